"""The job spec a worker writes for a trainer (`docs/trainer-protocol.md`). Torch-free.

The control plane builds a `JobSpec` (every `"auto"` resolved, the lineage's `Method` carried
typed), writes it as spec.json, and the trainer reads it back with `JobSpec.load`; both sides check
the same bounds (`HYPERPARAMETER_LIMITS`), so a value the API accepts is one the trainer runs.
"""

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainers.contracts.integrations import Integration
from trainers.contracts.methods import Method, MethodConfigError, objective_problem
from trainers.contracts.objectives import Objective

__all__ = [
    "AUTO_HYPERPARAMETERS",
    "HYPERPARAMETER_LIMITS",
    "PRECISIONS",
    "ContinualEvalSpec",
    "Hyperparameters",
    "JobSpec",
    "SpecError",
    "hyperparameter_problem",
]

# "auto": bfloat16 compute where the hardware has it natively (a GPU, a CPU with AVX512-BF16 or
# AMX), float32 elsewhere (docs/training.md, "Precision").
PRECISIONS = ("auto", "float32", "bfloat16")

# What "auto" resolves to. Fact-teaching jobs on small models need hundreds of steps
# (docs/training.md, small base), so users usually raise n_epochs or set max_steps.
AUTO_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}
# (lowest, highest) of each hyperparameter; learning_rate_multiplier must be above its lowest.
HYPERPARAMETER_LIMITS: dict[str, tuple[float, float]] = {
    "n_epochs": (1, 1000),
    "batch_size": (1, 512),
    "learning_rate_multiplier": (0, 100),
    "max_steps": (1, 1_000_000),
}


class SpecError(ValueError):
    """spec.json is unreadable, misses a field, has an unknown one or an impossible value."""


def hyperparameter_problem(name: str, value: Any) -> str | None:
    """Why `value` is not a resolved value of hyperparameter `name`, or None when it is one."""
    low, high = HYPERPARAMETER_LIMITS[name]
    if name == "learning_rate_multiplier":
        if type(value) in (int, float) and low < value <= high:
            return None
        return f"must be a number above {low} and at most {high}"
    if type(value) is int and low <= value <= high:
        return None
    return f"must be an integer from {low} to {high}"


@dataclass(frozen=True)
class Hyperparameters:
    """A job's resolved hyperparameters (the control plane resolved every `"auto"`).

    Attributes:
        n_epochs: Passes over the training file.
        batch_size: Rows per optimizer step, over all processes together.
        learning_rate_multiplier: Multiplies the method config's `learning_rate`.
        max_steps: When set, the number of optimizer steps (overrides `n_epochs`).
    """

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for spec_field in fields(self):
            value = getattr(self, spec_field.name)
            if value is None and spec_field.name == "max_steps":
                continue
            if problem := hyperparameter_problem(spec_field.name, value):
                raise SpecError(f"hyperparameters.{spec_field.name} {problem}, got {value!r}")

    def total_steps(self, rows: int) -> int:
        """Optimizer steps of a job that trains on `rows` rows: `max_steps` when set, else
        `n_epochs` passes of `ceil(rows / batch_size)` steps."""
        return self.max_steps or self.n_epochs * math.ceil(rows / self.batch_size)


@dataclass(frozen=True)
class ContinualEvalSpec:
    """How a job scores earlier jobs' probes while it trains (`eval.continual`).

    Attributes:
        every: Steps between evaluations, or `"log"` for a log-spaced schedule.
        items: Probes per job scored each time.
        earlier: Job id -> that job's probes.json, oldest first.
        current: This job's probes.json.
        recognition: Also score earlier jobs' recognition pairs (triples the cost).
        dense_steps: Also evaluate after each of the first this many steps: where the
            stability gap (De Lange et al.) shows, a sharp dip of earlier tasks as a new one starts.
    """

    every: int | str
    items: int
    earlier: dict[str, str]
    current: str
    recognition: bool = False
    dense_steps: int = 0

    def __post_init__(self) -> None:
        if self.every != "log" and (type(self.every) is not int or self.every < 1):
            raise SpecError(f'continual_eval.every must be a positive integer or "log", got {self.every!r}')
        if type(self.items) is not int or self.items < 1:
            raise SpecError(f"continual_eval.items must be a positive integer, got {self.items!r}")
        if type(self.dense_steps) is not int or self.dense_steps < 0:
            raise SpecError(
                f"continual_eval.dense_steps must be an integer of at least 0, got {self.dense_steps!r}"
            )

    @classmethod
    def from_dict(cls, data: Any) -> "ContinualEvalSpec":
        """Read the `continual_eval` object of a spec.json."""
        return cls(**_check_fields(cls, data, "continual_eval"))


@dataclass(frozen=True)
class JobSpec:
    """One job: what to train, from where, into where.

    Attributes:
        job_id: The fine-tuning job's id.
        tenant: Owner of the lineage.
        lineage: The continually adapted model's name.
        version: Version this job produces.
        parent_version: Version it starts from, or None for the first job.
        base_model: Hub id or local path of the lineage's base model.
        method: The lineage's method and its resolved config.
        training_file: The JSONL training file.
        training_file_sha256: Its hash (keys the tokenized-data cache).
        validation_file: None, or a JSONL file of the same row shapes the job is scored on
            (`valid_loss`, `valid_mean_token_accuracy`) and never trained on.
        validation_file_sha256: Its hash, None without one.
        parent_dir: Folder of the parent version, or None for the first job.
        output_dir: The version's staging folder (`v<N>.partial/`).
        hyperparameters: Epochs, batch size, learning-rate multiplier, max steps.
        seed: Seeds initialisation and the data order.
        checkpoint_every: Steps between checkpoints.
        cache_dir: Where tokenized training files are cached.
        held_out_rows: Rows of the training file (line numbers from 0, blank lines not counted)
            kept out of training: the job's held-out split (`eval.probes`).
        continual_eval: None, or how to evaluate earlier jobs during training.
        precision: One of `PRECISIONS`: the compute precision of the forward passes.
        integrations: Experiment trackers the metrics are also logged to (OpenAI's job
            `integrations`; `trainers/trackers.py`).
        objective: What the rows teach: `supervised` examples, or `dpo` preference pairs (OpenAI's
            job `method`; not the lineage's continual-learning `method`).
    """

    job_id: str
    tenant: str
    lineage: str
    version: int
    parent_version: int | None
    base_model: str
    method: Method
    training_file: Path
    training_file_sha256: str
    parent_dir: Path | None
    output_dir: Path
    hyperparameters: Hyperparameters
    seed: int
    checkpoint_every: int
    cache_dir: Path
    held_out_rows: list[int] = field(default_factory=list)
    continual_eval: ContinualEvalSpec | None = None
    precision: str = "auto"
    objective: Objective = field(default_factory=Objective)
    validation_file: Path | None = None
    validation_file_sha256: str | None = None
    integrations: list[Integration] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.method, Method):
            raise SpecError(f"spec.method must be a Method, got {type(self.method).__name__}")
        if not isinstance(self.objective, Objective):
            raise SpecError(f"spec.objective must be an Objective, got {type(self.objective).__name__}")
        if problem := objective_problem(self.method.type, self.objective.type):
            raise SpecError(
                f"a {self.method.type} lineage cannot train a {self.objective.type} job: {problem}"
            )
        if not isinstance(self.hyperparameters, Hyperparameters):
            kind = type(self.hyperparameters).__name__
            raise SpecError(f"spec.hyperparameters must be Hyperparameters, got {kind}")
        if self.precision not in PRECISIONS:
            raise SpecError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise SpecError(f"checkpoint_every must be a positive integer, got {self.checkpoint_every!r}")
        if (self.parent_dir is None) != (self.parent_version is None):
            raise SpecError("parent_dir and parent_version must be both set or both null")
        if (self.validation_file is None) != (self.validation_file_sha256 is None):
            raise SpecError("validation_file and validation_file_sha256 must be both set or both null")

    @classmethod
    def load(cls, path: Path) -> "JobSpec":
        """Read and check a spec.json.

        Raises:
            SpecError: The file is not a valid spec.
        """
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SpecError(f"cannot read spec {path}: {error}") from error
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        """Build a spec from parsed JSON, checking field names and the values the trainer uses.

        Raises:
            SpecError: Missing or unknown fields, or values of the wrong kind.
        """
        values = _check_fields(cls, data, "spec")
        values["hyperparameters"] = Hyperparameters(
            **_check_fields(Hyperparameters, values["hyperparameters"], "hyperparameters")
        )
        try:
            values["method"] = Method.from_json(values["method"])
        except MethodConfigError as error:
            raise SpecError(str(error)) from error
        if values.get("continual_eval") is not None:
            values["continual_eval"] = ContinualEvalSpec.from_dict(values["continual_eval"])
        try:
            values["objective"] = Objective.from_json(values.get("objective"))
            values["integrations"] = [Integration.from_json(item) for item in values.get("integrations", [])]
        except (TypeError, ValueError) as error:
            raise SpecError(str(error)) from error
        for name in _PATHS:
            if values.get(name) is not None:
                values[name] = Path(values[name])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The spec as spec.json holds it; `from_dict` reads it back."""
        values = {spec_field.name: getattr(self, spec_field.name) for spec_field in fields(self)}
        values["hyperparameters"] = asdict(self.hyperparameters)
        values["method"] = self.method.to_json()
        if self.continual_eval is not None:
            values["continual_eval"] = asdict(self.continual_eval)
        values["objective"] = self.objective.to_json()
        values["integrations"] = [asdict(integration) for integration in self.integrations]
        for name in _PATHS:
            if values[name] is not None:
                values[name] = str(values[name])
        return values

    def write(self, path: Path) -> Path:
        """Write the spec to `path` (a job's spec.json) and return the path."""
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path


_PATHS = ("training_file", "output_dir", "cache_dir", "parent_dir", "validation_file")


def _check_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be a JSON object")
    names = {spec_field.name for spec_field in fields(cls)}
    required = {
        spec_field.name
        for spec_field in fields(cls)
        if spec_field.default is MISSING and spec_field.default_factory is MISSING
    }
    if unknown := sorted(set(data) - names):
        raise SpecError(f"{where} has unknown fields: {', '.join(unknown)}")
    if missing := sorted(required - set(data)):
        raise SpecError(f"{where} is missing fields: {', '.join(missing)}")
    return dict(data)
