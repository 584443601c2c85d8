"""Protocol lines: what a trainer or evaluator process tells its worker, one JSON object per line
on its stdout, `{"type": <kind>, <fields>}` (docs/trainer-protocol.md).

Writers build these objects and `dump` them; the worker reads them back with `parse_line`, the
one parser, and matches on their classes. Torch-free.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

__all__ = [
    "Checkpoint",
    "Completed",
    "ContinualEvaluation",
    "Evaluation",
    "Line",
    "Message",
    "Metrics",
    "Panel",
    "ProtocolError",
    "Scores",
    "Started",
    "dump",
    "parse_line",
]


class ProtocolError(ValueError):
    """A JSON protocol line of an unknown type, or with missing or unknown fields."""


@dataclass(frozen=True)
class Started:
    """Data and model are ready; training begins (or resumes, from `resumed_from_step`) on
    `processes` processes that talk over `backend` (`gloo` on CPU, `nccl` on GPUs), computing in
    `precision`."""

    kind: ClassVar[str] = "started"
    total_steps: int
    examples: int
    resumed_from_step: int
    processes: int
    backend: str
    precision: str


@dataclass(frozen=True)
class Metrics:
    """Training metrics at `step`: the mean loss and token accuracy (the share of loss tokens the
    model predicts as its top choice) since the previous metrics line; with a validation file, the
    loss and token accuracy of one batch of it (OpenAI's `valid_loss`, `valid_mean_token_accuracy`);
    of a `dpo` job, the share of its pairs whose preferred output had the higher implicit reward
    beta * (log pi - log pi_ref), and the mean margin of those rewards, over the same steps."""

    kind: ClassVar[str] = "metrics"
    step: int
    total_steps: int
    train_loss: float
    learning_rate: float
    trained_tokens: int
    elapsed_s: float
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    reward_accuracy: float | None = None
    reward_margin: float | None = None


@dataclass(frozen=True)
class ContinualEvaluation:
    """One continual evaluation during a job (De Lange et al., arXiv 2205.13452; docs/evaluation.md).

    Accuracies are recall accuracies in [0, 1] on a small fixed subset of each job's probes.

    Attributes:
        step: The optimizer step just taken (counting from 1).
        accuracy: Per earlier job id (oldest first), its accuracy now.
        current: The current job's accuracy on its own probes now.
        min_acc: Mean over earlier jobs of their lowest accuracy so far in this job.
        wc_acc: Worst-case accuracy: `current / k + (1 - 1 / k) * min_acc` for k jobs in all.
        windowed_forgetting: Mean over earlier jobs of the largest drop within the last
            `window` evaluations, maximised over the job so far (WF^window).
        forgetting: Mean over earlier jobs of (accuracy at this job's start - accuracy now); the
            signal a controller reads (negative when earlier jobs improved).
        recognition: Per earlier job id, its recognition accuracy now (seen vs. foil by NLL);
            empty unless the job's `continual_eval` asks for recognition.
    """

    step: int
    accuracy: dict[str, float]
    current: float
    min_acc: float
    wc_acc: float
    windowed_forgetting: float
    forgetting: float
    recognition: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation(ContinualEvaluation):
    """A continual evaluation's line: the evaluation, the settings the method changed in response
    (`after_evaluation`) and the seconds it took."""

    kind: ClassVar[str] = "evaluation"
    method: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint is complete on disk; `path` is relative to the output folder. The metrics are
    the last ones reported (None: not measured); `full_valid_*` are over the whole validation
    file, measured at the last step."""

    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str
    train_loss: float | None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


@dataclass(frozen=True)
class Message:
    """Something a user should read; also what a line that is not JSON becomes."""

    kind: ClassVar[str] = "message"
    message: str
    level: Literal["info", "warn", "error"] = "info"


@dataclass(frozen=True)
class Scores:
    """The evaluator's retention scores of `version` on the probes of job `job_id`."""

    kind: ClassVar[str] = "scores"
    version: int
    job_id: str
    scores: dict[str, Any]


@dataclass(frozen=True)
class Panel:
    """The evaluator's result of one health-panel suite on `version`."""

    kind: ClassVar[str] = "panel"
    version: int
    suite: str
    scores: list[float]  # one per item of the suite
    details: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class Completed:
    """Sent once, last: the trainer's artifact is complete (its steps, last loss and tokens), or
    the evaluator has written every line (no fields)."""

    kind: ClassVar[str] = "completed"
    steps: int | None = None
    train_loss: float | None = None
    trained_tokens: int | None = None


Line = Started | Metrics | Evaluation | Checkpoint | Message | Scores | Panel | Completed
_KINDS: dict[str, type[Line]] = {
    kind.kind: kind for kind in (Started, Metrics, Evaluation, Checkpoint, Message, Scores, Panel, Completed)
}


def dump(line: Line) -> str:
    """The line as written: one JSON object, without the newline."""
    return json.dumps({"type": line.kind, **asdict(line)})


def parse_line(raw: str | bytes) -> Line:
    """The typed line of one stdout line; a line that is not a JSON object is a `Message` (a
    library's print).

    Raises:
        ProtocolError: a JSON object of an unknown type, or whose fields do not match it.
    """
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return Message(text.strip())
    if not isinstance(data, dict):
        return Message(text.strip())
    if data.get("type") not in _KINDS:
        raise ProtocolError(f"not a protocol line: {text.strip()[:200]}")
    line_type = _KINDS[data.pop("type")]
    names = {item.name for item in fields(line_type)}
    if set(data) - names:
        raise ProtocolError(f"{line_type.kind} line with unknown fields {sorted(set(data) - names)}")
    try:
        return line_type(**data)
    except TypeError as error:
        raise ProtocolError(f"{line_type.kind} line: {error}") from error
