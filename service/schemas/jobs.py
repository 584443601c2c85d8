"""Fine-tuning job, event and checkpoint shapes (OpenAI `fine_tuning.job*` objects)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainers.contracts.integrations import Integration
from trainers.contracts.job import AUTO_HYPERPARAMETERS, Hyperparameters, hyperparameter_problem
from trainers.contracts.objectives import DPO_BETA_AUTO, Objective, beta_problem
from trainers.contracts.statuses import JobStatus

MAX_PROCESSES = 64  # trainer processes of one job, all on one machine
SUFFIX = r"^[A-Za-z0-9._-]{1,64}$"  # OpenAI's limit of 64 characters; addressable in a model name


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


class DpoHyperparameters(RequestedHyperparameters):
    """A `dpo` job's hyperparameters: the usual ones plus `beta`."""

    beta: float | str = "auto"

    @field_validator("beta", mode="before")
    @classmethod
    def _auto_or_beta(cls, value: Any) -> Any:
        if value == "auto" or (problem := beta_problem(value)) is None:
            return value
        raise ValueError(f"must be 'auto' or {problem.removeprefix('must be ')}")


class SupervisedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: RequestedHyperparameters | None = None


class DpoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: DpoHyperparameters | None = None


class HyperparameterConflict(ValueError):
    """A hyperparameter set at the top level and in `method.<type>.hyperparameters` to different values.

    Attributes:
        param: `method.<type>.hyperparameters.<name>`.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class JobMethod(BaseModel):
    """OpenAI's job `method`: the training objective, `supervised` (rows are examples to imitate)
    or `dpo` (rows are preference pairs). Not the lineage's continual-learning `method`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo"]
    supervised: SupervisedSettings | None = None
    dpo: DpoSettings | None = None

    @model_validator(mode="after")
    def _only_its_own_settings(self) -> "JobMethod":
        other = "dpo" if self.type == "supervised" else "supervised"
        if getattr(self, other) is not None:
            raise ValueError(f"a {self.type!r} method may hold only {self.type!r} settings, not {other!r}")
        return self

    def resolved(self, top_level: RequestedHyperparameters) -> tuple[Hyperparameters, Objective]:
        """The job's hyperparameters and objective, every "auto" replaced.

        A hyperparameter may be set at the top level (OpenAI deprecates it there) or in
        `method.<type>.hyperparameters`; set in both, the two must be equal (or one `"auto"`,
        which leaves the other's value).

        Raises:
            HyperparameterConflict: One is set in both places to different values.
        """
        settings = self.supervised if self.type == "supervised" else self.dpo
        inner = settings.hyperparameters if settings is not None else None
        values = top_level.model_dump(include=top_level.model_fields_set)
        if inner is not None:
            for name in inner.model_fields_set:
                value = getattr(inner, name)
                if value == "auto" and name in values:
                    continue  # "auto" leaves the choice open: the other place's value stands
                if name in values and values[name] not in ("auto", value):
                    raise HyperparameterConflict(
                        f"method.{self.type}.hyperparameters.{name}",
                        f"method.{self.type}.hyperparameters.{name} is {value!r} but hyperparameters."
                        f"{name} is {values[name]!r}; set it in one place (method.{self.type}."
                        "hyperparameters; the top-level hyperparameters are deprecated) or to one value",
                    )
                values[name] = value
        beta = values.pop("beta", "auto")
        hyperparameters = RequestedHyperparameters(**values).resolved()
        if self.type == "supervised":
            return hyperparameters, Objective()
        return hyperparameters, Objective("dpo", DPO_BETA_AUTO if beta == "auto" else beta)


def job_method_public(objective: Objective, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """A job's `method` as OpenAI returns it, with the hyperparameters it runs with."""
    resolved = dict(hyperparameters)
    if objective.type == "dpo":
        resolved["beta"] = objective.beta
    return {"type": objective.type, objective.type: {"hyperparameters": resolved}}


class IntegrationSettings(BaseModel):
    """A tracker run's settings, in OpenAI's `wandb` shape for every integration type."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(
        min_length=1, max_length=128, description="W&B project, MLflow experiment, TensorBoard folder."
    )
    name: str | None = Field(None, max_length=128, description="The run's name.")
    entity: str | None = Field(None, max_length=128, description="The W&B entity (team or user).")
    tags: list[str] = Field([], max_length=50)

    @field_validator("tags")
    @classmethod
    def _tag_limits(cls, value: list[str]) -> list[str]:
        if any(not 0 < len(tag) <= 64 for tag in value):
            raise ValueError("each tag must have 1 to 64 characters")
        return value


class JobIntegration(BaseModel):
    """OpenAI's job integration: `{"type": "wandb", "wandb": {...}}`; `mlflow` and `tensorboard`
    take the same settings."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["wandb", "mlflow", "tensorboard"]
    wandb: IntegrationSettings | None = None
    mlflow: IntegrationSettings | None = None
    tensorboard: IntegrationSettings | None = None

    @model_validator(mode="after")
    def _its_own_settings(self) -> "JobIntegration":
        others = [
            name for name in ("wandb", "mlflow", "tensorboard") if name != self.type and getattr(self, name)
        ]
        if getattr(self, self.type) is None or others:
            raise ValueError(f"a {self.type!r} integration holds its settings under {self.type!r} only")
        return self

    def resolved(self) -> Integration:
        """The contract's `Integration`."""
        settings: IntegrationSettings = getattr(self, self.type)
        return Integration(self.type, settings.project, settings.name, settings.entity, list(settings.tags))


def integration_public(integration: dict[str, Any]) -> dict[str, Any]:
    """An integration as OpenAI returns it, from its stored form (`dataclasses.asdict(Integration)`)."""
    settings = {name: value for name, value in integration.items() if name != "type"}
    return {"type": integration["type"], integration["type"]: settings}


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
    method: JobMethod = Field(
        default_factory=lambda: JobMethod(type="supervised"),
        description="OpenAI's training objective: `supervised` or `dpo` (preference pairs), with its "
        "hyperparameters. Not the lineage's continual-learning method.",
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    integrations: list[JobIntegration] = Field(
        [],
        max_length=8,
        description="Experiment trackers the job's metrics are also logged to: wandb, mlflow, tensorboard.",
    )
    metadata: dict[str, str] | None = None
    suffix: str | None = Field(
        None,
        pattern=SUFFIX,
        description="Up to 64 letters, digits, '.', '_', '-'. The version the job trains is named "
        "`<lineage>@<N>-<suffix>` (docs/jobs.md); it also names the lineage a job on a base model "
        "starts (see `model`).",
    )
    validation_file: str | None = Field(
        None,
        description="A file of the same row shapes the job is scored on (valid_loss, "
        "valid_mean_token_accuracy) and never trained on.",
    )
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
    method: dict[str, Any] = Field(
        description="The training objective and the hyperparameters it runs with, as OpenAI returns it."
    )
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
    validation_file: str | None = None
    result_files: list[str] = Field(
        [], description="Once the job succeeded: its metrics CSV, a file of purpose `fine-tune-results`."
    )
    seed: int
    metadata: dict[str, str] | None
    suffix: str | None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] = Field(
        [], description="The job's experiment trackers, as OpenAI returns them: {type, <type>: settings}."
    )


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
