"""Continual-learning metrics from a score matrix R[i][j]: score on task j after training task i.

Definitions (research/evaluation.md section 4.1), for T tasks, tasks counted from 0:

- average accuracy: ACC = (1/T) sum_j R[T-1][j];
- backward transfer: BWT = (1/(T-1)) sum_{j<T-1} (R[T-1][j] - R[j][j]), over the T-1 earlier tasks
  (GEM's normalisation; TRACE and SAPT divide by T); negative means forgetting;
- forgetting: F = (1/(T-1)) sum_{j<T-1} (max_{j<=i<T-1} R[i][j] - R[T-1][j]) (Chaudhry et al. 2018).

With one task BWT and forgetting are 0 (nothing earlier to forget). Entries R[i][j] with j > i
(tasks not trained yet) are not read and may be None.
"""

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ContinualMetrics", "continual_metrics"]

Matrix = Sequence[Sequence[float | None]]


@dataclass(frozen=True)
class ContinualMetrics:
    """The summary of one run's score matrix.

    Attributes:
        average_accuracy: Mean final score over all tasks.
        backward_transfer: Mean change of earlier tasks' scores from just after learning them to the end.
        forgetting: Mean drop of earlier tasks from their best to their final score.
        final_task: Score of the last task right after learning it.
    """

    average_accuracy: float
    backward_transfer: float
    forgetting: float
    final_task: float


def continual_metrics(scores: Matrix) -> ContinualMetrics:
    """Average accuracy, backward transfer and forgetting of a square score matrix.

    Args:
        scores: R[i][j] for i, j in 0..T-1; only j <= i is read.

    Returns:
        The metrics, in the matrix's unit (e.g. accuracy in [0, 1]).
    """
    tasks = len(scores)
    if tasks == 0 or any(len(row) != tasks for row in scores):
        raise ValueError("the score matrix must be square and non-empty")
    final = [_score(scores, tasks - 1, j) for j in range(tasks)]
    earlier = range(tasks - 1)
    backward = [final[j] - _score(scores, j, j) for j in earlier]
    forgetting = [max(_score(scores, i, j) for i in range(j, tasks - 1)) - final[j] for j in earlier]
    return ContinualMetrics(
        average_accuracy=sum(final) / tasks,
        backward_transfer=sum(backward) / len(backward) if backward else 0.0,
        forgetting=sum(forgetting) / len(forgetting) if forgetting else 0.0,
        final_task=final[-1],
    )


def _score(scores: Matrix, i: int, j: int) -> float:
    value = scores[i][j]
    if value is None:
        raise ValueError(f"R[{i}][{j}] is missing")
    return value
