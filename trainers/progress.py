"""The trainer's progress lines: one JSON object per line on the protocol stream.

See `docs/trainer-protocol.md` for the line types and their fields. Only the main process
writes; the others hold a silent reporter.
"""

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:  # torch comes with it; `trainers.run` imports this module before torch
    from trainers.interface import ContinualEvaluation

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
        self._emit(
            "started",
            total_steps=total_steps,
            examples=examples,
            resumed_from_step=resumed_from_step,
            processes=processes,
            backend=backend,
            precision=precision,
        )

    def metrics(
        self,
        step: int,
        total_steps: int,
        train_loss: float,
        learning_rate: float,
        trained_tokens: int,
        elapsed_s: float,
    ) -> None:
        """Training metrics at `step` (the mean loss since the previous metrics line)."""
        self._emit(
            "metrics",
            step=step,
            total_steps=total_steps,
            train_loss=round(train_loss, 6),
            learning_rate=learning_rate,
            trained_tokens=trained_tokens,
            elapsed_s=round(elapsed_s, 3),
        )

    def evaluation(self, evaluation: "ContinualEvaluation", method: dict[str, float], seconds: float) -> None:
        """A continual evaluation of earlier jobs' probes at `evaluation.step` (`eval.continual`).

        `method` holds the settings the method changed in response (`after_evaluation`).
        """
        self._emit("evaluation", **asdict(evaluation), method=method, seconds=round(seconds, 3))

    def checkpoint(self, step: int, path: str, train_loss: float | None) -> None:
        """A checkpoint is complete on disk; `path` is relative to the output folder."""
        self._emit("checkpoint", step=step, path=path, train_loss=train_loss)

    def message(self, message: str, level: Literal["info", "warn", "error"] = "info") -> None:
        """Something a user should read."""
        self._emit("message", level=level, message=message)

    def completed(self, steps: int, train_loss: float | None, trained_tokens: int) -> None:
        """The artifact is complete; sent once, last."""
        self._emit("completed", steps=steps, train_loss=train_loss, trained_tokens=trained_tokens)

    def _emit(self, kind: str, **fields: Any) -> None:
        if self.stream is None:
            return
        self.stream.write(json.dumps({"type": kind, **fields}) + "\n")
        self.stream.flush()
