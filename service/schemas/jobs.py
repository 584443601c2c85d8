"""Fine-tuning job, event and checkpoint shapes (OpenAI `fine_tuning.job*` objects)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainers.contracts.statuses import JobStatus

# What "auto" resolves to. Fact-teaching jobs on small models need hundreds of steps
# (docs/training.md, small base), so users usually raise n_epochs or set max_steps.
AUTO_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}
_INT_RANGES = {"n_epochs": (1, 1000), "batch_size": (1, 512)}
MAX_PROCESSES = 64  # trainer processes of one job, all on one machine


class Hyperparameters(BaseModel):
    """OpenAI's hyperparameters plus `max_steps`, which overrides `n_epochs` when set."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    max_steps: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("n_epochs", "batch_size", mode="before")
    @classmethod
    def _auto_or_int(cls, value: Any, info: Any) -> Any:
        low, high = _INT_RANGES[info.field_name]
        if value == "auto" or (type(value) is int and low <= value <= high):
            return value
        raise ValueError(f"must be 'auto' or an integer from {low} to {high}")

    @field_validator("learning_rate_multiplier", mode="before")
    @classmethod
    def _auto_or_positive(cls, value: Any) -> Any:
        if value == "auto" or (type(value) in (int, float) and 0 < value <= 100):
            return value
        raise ValueError("must be 'auto' or a number above 0 and at most 100")

    def resolved(self) -> dict[str, Any]:
        """The values a trainer runs with: every "auto" replaced."""
        values = self.model_dump()
        return {k: AUTO_HYPERPARAMETERS[k] if v == "auto" else v for k, v in values.items()}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The lineage to update.")
    training_file: str
    hyperparameters: Hyperparameters = Field(default_factory=lambda: Hyperparameters())
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    suffix: str | None = Field(None, max_length=64)
    validation_file: None = Field(None, description="Not supported; held-out data is split off.")
    processes: int | None = Field(
        None,
        ge=1,
        le=MAX_PROCESSES,
        strict=True,
        description="Trainer processes (one per GPU on GPU workers), each taking a share of every "
        "batch; at most the batch size. Unset: the worker's NEUROPLAST_TRAINER_PROCESSES.",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # OpenAI's limits: at most 16 pairs, keys up to 64 and values up to 512 characters.
        if value is not None and (
            len(value) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in value.items())
        ):
            raise ValueError("at most 16 pairs, keys up to 64 and values up to 512 characters")
        return value


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: JobStatus
    error: JobError | None
    hyperparameters: dict[str, Any]
    trained_tokens: int | None
    junk_ratio: float | None = Field(
        None, description="The training file's junk ratio (training-data screen)."
    )
    processes: int | None = Field(
        None, description="Trainer processes: as asked for, or, once the job started, the count it runs with."
    )
    training_file: str
    validation_file: None = None
    result_files: list[str] = []
    seed: int
    metadata: dict[str, str] | None
    suffix: str | None
    estimated_finish: int | None = None
    integrations: list[Any] = []


class EventPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


class CheckpointPublic(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, Any]
