"""Continual-learning metrics from a score matrix R[i][j]: score on task j after training task i.

Definitions (docs/evaluation.md, continual-learning metrics), for T tasks, tasks counted from 0:

- average accuracy: ACC = (1/T) sum_j R[T-1][j];
- backward transfer: BWT = (1/(T-1)) sum_{j<T-1} (R[T-1][j] - R[j][j]), over the T-1 earlier tasks
  (GEM's normalisation; TRACE and SAPT divide by T); negative means forgetting;
- forgetting: F = (1/(T-1)) sum_{j<T-1} (max_{j<=i<T-1} R[i][j] - R[T-1][j]) (Chaudhry et al. 2018).
- area under the forgetting curve (TRC², arXiv 2602.22479): the
  forgetting F_i after each task i >= 1 (as above, over tasks j < i, with i in place of T-1),
  averaged over the stream: AUFC = (1/(T-1)) sum_{i>=1} F_i. Sampled at task boundaries here.

- forward transfer (GEM): FWT = (1/(T-1)) sum_{j>0} (R[j-1][j] - b[j]), the score on task j just
  before training on it against the base model's b[j]; needs those entries.

With one task BWT, forgetting and FWT are 0 (nothing earlier to forget or transfer from). Entries
R[i][j] with j > i (tasks not trained yet) are not read, and may be None, except R[j-1][j] for FWT.

During a task, `StabilityTracker` keeps De Lange et al.'s continual-evaluation metrics (arXiv
2205.13452; docs/evaluation.md): min-ACC, WC-ACC and windowed forgetting WF^window.
"""

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ContinualMetrics",
    "StabilityTracker",
    "area_under_forgetting_curve",
    "continual_metrics",
    "forgetting_curve",
    "forward_transfer",
]

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


def forgetting_curve(scores: Matrix) -> list[float]:
    """Forgetting after each task from the second on: F_i = mean_{j<i} (max_{j<=k<i} R[k][j] - R[i][j])."""
    return [
        sum(max(_score(scores, k, j) for k in range(j, i)) - _score(scores, i, j) for j in range(i)) / i
        for i in range(1, len(scores))
    ]


def area_under_forgetting_curve(scores: Matrix) -> float:
    """Mean of `forgetting_curve` over the stream (0 for a single task)."""
    curve = forgetting_curve(scores)
    return sum(curve) / len(curve) if curve else 0.0


def forward_transfer(scores: Matrix, baseline: Sequence[float | None]) -> float | None:
    """GEM's forward transfer: how much earlier tasks helped each task before it was trained.

    Args:
        scores: R[i][j], square; R[j-1][j] is task j's score just before training on it.
        baseline: b[j], task j's score under the base model.

    Returns:
        The mean of R[j-1][j] - b[j] over tasks 1..T-1 (0 for one task), or None when any of
        those entries is missing.
    """
    pairs = [(scores[j - 1][j], baseline[j]) for j in range(1, len(scores))]
    if any(before is None or base is None for before, base in pairs):
        return None
    gains = [before - base for before, base in pairs]  # type: ignore[operator]
    return sum(gains) / len(gains) if gains else 0.0


@dataclass
class StabilityTracker:
    """Running continual-evaluation metrics over one task's evaluations of earlier tasks.

    Attributes:
        window: Evaluations per window of the windowed forgetting (De Lange et al. use 10 and 100).
    """

    window: int = 10
    _start: dict[str, float] = field(default_factory=dict)
    _minimum: dict[str, float] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _worst_drop: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the state (what `load` reads), so the next job's tracker spans both jobs."""
        state = {
            "window": self.window,
            "start": self._start,
            "minimum": self._minimum,
            "recent": {task: list(values) for task, values in self._recent.items()},
            "worst_drop": self._worst_drop,
        }
        path.write_text(json.dumps(state) + "\n")

    @classmethod
    def load(cls, path: Path) -> "StabilityTracker | None":
        """The tracker `save` wrote to `path`, or None when there is none."""
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        window = state["window"]
        recent = {task: deque(values, maxlen=window) for task, values in state["recent"].items()}
        return cls(window, state["start"], state["minimum"], recent, state["worst_drop"])

    def update(self, earlier: Mapping[str, float], current: float) -> dict[str, float]:
        """Record one evaluation and return the metrics so far.

        Args:
            earlier: Accuracy of each earlier task now (at least one).
            current: Accuracy of the task being learned now.

        Returns:
            `min_acc` (mean over earlier tasks of their lowest accuracy so far), `wc_acc`
            (`current / k + (1 - 1 / k) * min_acc` for k tasks in all), `windowed_forgetting`
            (mean over earlier tasks of the largest drop inside any window so far) and
            `forgetting` (mean over earlier tasks of first evaluation minus now).
        """
        for task, accuracy in earlier.items():
            self._start.setdefault(task, accuracy)
            self._minimum[task] = min(self._minimum.get(task, accuracy), accuracy)
            recent = self._recent.setdefault(task, deque(maxlen=self.window))
            recent.append(accuracy)
            drop = max(before - accuracy for before in recent)  # the newest value against the window
            self._worst_drop[task] = max(self._worst_drop.get(task, 0.0), drop)
        tasks = len(earlier) + 1
        min_acc = sum(self._minimum[task] for task in earlier) / len(earlier)
        return {
            "min_acc": min_acc,
            "wc_acc": current / tasks + (1 - 1 / tasks) * min_acc,
            "windowed_forgetting": sum(self._worst_drop[task] for task in earlier) / len(earlier),
            "forgetting": sum(self._start[task] - earlier[task] for task in earlier) / len(earlier),
        }


def _score(scores: Matrix, i: int, j: int) -> float:
    value = scores[i][j]
    if value is None:
        raise ValueError(f"R[{i}][{j}] is missing")
    return value
