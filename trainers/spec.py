"""The job spec a worker writes for a trainer (`docs/trainer-protocol.md`). Torch-free."""

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainers.registry import MethodConfigError, resolve_method_config

__all__ = ["PRECISIONS", "Hyperparameters", "JobSpec", "SpecError"]

# "auto": bfloat16 compute where the hardware has it natively (a GPU, a CPU with AVX512-BF16 or
# AMX), float32 elsewhere (docs/training.md, "Precision").
PRECISIONS = ("auto", "float32", "bfloat16")


class SpecError(ValueError):
    """spec.json is unreadable, misses a field, has an unknown one or an impossible value."""


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
        for name in ("n_epochs", "batch_size", "max_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SpecError(f"hyperparameters.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.learning_rate_multiplier, int | float) or not (
            self.learning_rate_multiplier > 0
        ):
            raise SpecError(
                "hyperparameters.learning_rate_multiplier must be a positive number, "
                f"got {self.learning_rate_multiplier!r}"
            )


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
        method: `{"type": name, name: {config fields}}`.
        training_file: The JSONL training file.
        training_file_sha256: Its hash (keys the tokenized-data cache).
        parent_dir: Folder of the parent version, or None for the first job.
        output_dir: The version's staging folder (`v<N>.partial/`).
        hyperparameters: Epochs, batch size, learning-rate multiplier, max steps.
        seed: Seeds initialisation and the data order.
        checkpoint_every: Steps between checkpoints.
        cache_dir: Where tokenized training files are cached.
        held_out_rows: Rows of the training file (line numbers from 0, blank lines not counted)
            kept out of training: the job's held-out split (`eval.probes`).
        continual_eval: None, or how to evaluate earlier jobs during training:
            `{"every": steps, "items": probes per job, "earlier": {job_id: probes.json, ...},
            "current": this job's probes.json}` (`eval.continual`).
        precision: One of `PRECISIONS`: the compute precision of the forward passes.
    """

    job_id: str
    tenant: str
    lineage: str
    version: int
    parent_version: int | None
    base_model: str
    method: dict[str, Any]
    training_file: Path
    training_file_sha256: str
    parent_dir: Path | None
    output_dir: Path
    hyperparameters: Hyperparameters
    seed: int
    checkpoint_every: int
    cache_dir: Path
    held_out_rows: list[int] = field(default_factory=list)
    continual_eval: dict[str, Any] | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.method, dict) or "type" not in self.method:
            raise SpecError('spec.method must be an object with a "type"')
        try:
            resolve_method_config(self.method_type, self.method_fields)
        except MethodConfigError as error:
            raise SpecError(str(error)) from error
        if self.precision not in PRECISIONS:
            raise SpecError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise SpecError(f"checkpoint_every must be a positive integer, got {self.checkpoint_every!r}")
        if (self.parent_dir is None) != (self.parent_version is None):
            raise SpecError("parent_dir and parent_version must be both set or both null")

    @property
    def method_type(self) -> str:
        """The method's name, e.g. `"lora"`."""
        return self.method["type"]

    @property
    def method_fields(self) -> dict[str, Any]:
        """The method's config fields as given in the spec."""
        return self.method.get(self.method_type, {})

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
        for name in _PATHS:
            if values[name] is not None:
                values[name] = Path(values[name])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The spec as spec.json holds it; `from_dict` reads it back."""
        values = {spec_field.name: getattr(self, spec_field.name) for spec_field in fields(self)}
        values["hyperparameters"] = asdict(self.hyperparameters)
        for name in _PATHS:
            if values[name] is not None:
                values[name] = str(values[name])
        return values

    def write(self, path: Path) -> Path:
        """Write the spec to `path` (a job's spec.json) and return the path."""
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path


_PATHS = ("training_file", "output_dir", "cache_dir", "parent_dir")


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
