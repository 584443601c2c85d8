"""Fine-tuning job, event and checkpoint shapes (OpenAI `fine_tuning.job*` objects)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainers.contracts.job import AUTO_HYPERPARAMETERS, Hyperparameters, hyperparameter_problem
from trainers.contracts.statuses import JobStatus

MAX_PROCESSES = 64  # trainer processes of one job, all on one machine


class RequestedHyperparameters(BaseModel):
    """OpenAI's hyperparameters as a request sends them (each may be `"auto"`), plus `max_steps`,
    which overrides `n_epochs` when set. Bounds are the trainer's (`HYPERPARAMETER_LIMITS`)."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    max_steps: int | None = None

    @field_validator("n_epochs", "batch_size", "learning_rate_multiplier", mode="before")
    @classmethod
    def _auto_or_in_bounds(cls, value: Any, info: Any) -> Any:
        if value == "auto" or (problem := hyperparameter_problem(info.field_name, value)) is None:
            return value
        raise ValueError(f"must be 'auto' or {problem.removeprefix('must be ')}")

    @field_validator("max_steps", mode="before")
    @classmethod
    def _unset_or_in_bounds(cls, value: Any) -> Any:
        if value is None or (problem := hyperparameter_problem("max_steps", value)) is None:
            return value
        raise ValueError(f"{problem} (or null)")

    def resolved(self) -> Hyperparameters:
        """The values a trainer runs with: every "auto" replaced."""
        values: dict[str, Any] = {
            k: AUTO_HYPERPARAMETERS[k] if v == "auto" else v for k, v in self.model_dump().items()
        }
        return Hyperparameters(**values)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="The lineage to update: `<lineage>` trains from its promoted version (or the base "
        "model), `<lineage>@<N>` from version N. A base model the service knows (a model folder's or "
        "a fetched model's name) starts a lineage of it, named `suffix` (else after the base model), "
        "or continues that lineage when it exists on the same base model."
    )
    training_file: str
    hyperparameters: RequestedHyperparameters = Field(default_factory=lambda: RequestedHyperparameters())
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    suffix: str | None = Field(
        None, max_length=64, description="Names the lineage a job on a base model starts (see `model`)."
    )
    validation_file: None = Field(None, description="Not supported; held-out data is split off.")
    force: bool = Field(
        False, description="Train from a version the health gate rejected (`model: <lineage>@<N>`)."
    )
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
    parent_version: int | None = Field(
        None, description="The version the job trains from (null: the base model, or not started yet)."
    )
    parent_reason: str | None = Field(None, description="Why that parent, once the job started.")
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
