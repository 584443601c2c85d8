"""The trainer's progress lines: one JSON object per line on the protocol stream.

See `docs/trainer-protocol.md` for the line types and their fields. Only the main process
writes; the others hold a silent reporter.
"""

from dataclasses import asdict
from typing import Literal, TextIO

from trainers.contracts.lines import (
    Checkpoint,
    Completed,
    ContinualEvaluation,
    Evaluation,
    Line,
    Message,
    Metrics,
    Started,
    dump,
)

__all__ = ["Progress"]


class Progress:
    """Writes protocol lines to a stream, flushed at once.

    Args:
        stream: The real stdout (a dup of fd 1 taken before libraries could print there), or
            None to stay silent (processes other than the main one).
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def started(
        self,
        total_steps: int,
        examples: int,
        resumed_from_step: int,
        processes: int,
        backend: str,
        precision: str,
    ) -> None:
        """Data and model are ready; training begins (or resumes) on `processes` processes that
        talk over `backend` (`gloo` on CPU, `nccl` on GPUs), computing in `precision`."""
        self._emit(Started(total_steps, examples, resumed_from_step, processes, backend, precision))

    def metrics(
        self,
        step: int,
        total_steps: int,
        train_loss: float,
        learning_rate: float,
        trained_tokens: int,
        elapsed_s: float,
        train_mean_token_accuracy: float | None = None,
        valid_loss: float | None = None,
        valid_mean_token_accuracy: float | None = None,
        reward_accuracy: float | None = None,
        reward_margin: float | None = None,
    ) -> None:
        """Training metrics at `step` (means since the previous metrics line), the validation
        batch's when the job has a validation file, a `dpo` job's reward accuracy and margin."""
        self._emit(
            Metrics(
                step,
                total_steps,
                round(train_loss, 6),
                learning_rate,
                trained_tokens,
                round(elapsed_s, 3),
                _rounded(train_mean_token_accuracy),
                _rounded(valid_loss),
                _rounded(valid_mean_token_accuracy),
                _rounded(reward_accuracy),
                _rounded(reward_margin),
            )
        )

    def evaluation(self, evaluation: ContinualEvaluation, method: dict[str, float], seconds: float) -> None:
        """A continual evaluation of earlier jobs' probes at `evaluation.step` (`eval.continual`).

        `method` holds the settings the method changed in response (`after_evaluation`).
        """
        self._emit(Evaluation(**asdict(evaluation), method=method, seconds=round(seconds, 3)))

    def checkpoint(
        self,
        step: int,
        path: str,
        train_loss: float | None,
        train_mean_token_accuracy: float | None = None,
        valid_loss: float | None = None,
        valid_mean_token_accuracy: float | None = None,
        full_valid_loss: float | None = None,
        full_valid_mean_token_accuracy: float | None = None,
    ) -> None:
        """A checkpoint is complete on disk; `path` is relative to the output folder. The metrics
        are the last reported (None: not measured)."""
        self._emit(
            Checkpoint(
                step,
                path,
                train_loss,
                _rounded(train_mean_token_accuracy),
                _rounded(valid_loss),
                _rounded(valid_mean_token_accuracy),
                _rounded(full_valid_loss),
                _rounded(full_valid_mean_token_accuracy),
            )
        )

    def message(self, message: str, level: Literal["info", "warn", "error"] = "info") -> None:
        """Something a user should read."""
        self._emit(Message(message, level))

    def completed(self, steps: int, train_loss: float | None, trained_tokens: int) -> None:
        """The artifact is complete; sent once, last."""
        self._emit(Completed(steps, train_loss, trained_tokens))

    def _emit(self, line: Line) -> None:
        if self.stream is None:
            return
        self.stream.write(dump(line) + "\n")
        self.stream.flush()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
