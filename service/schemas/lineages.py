"""Lineage and version shapes."""

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LINEAGE_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class MethodChoice(BaseModel):
    """`{type, <type>: {...config}}`; the config is checked against the method's dataclass."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="lora | replay | ilora | titans | trc")

    @model_validator(mode="after")
    def _only_own_config(self) -> "MethodChoice":
        others = sorted(set(self.model_extra or {}) - {self.type})
        if others:
            raise ValueError(f"unexpected key(s) {others}: only '{self.type}' may hold a config")
        return self

    @property
    def config(self) -> Any:
        """The user's config as sent; the method registry checks its shape and fields."""
        value = (self.model_extra or {}).get(self.type)
        return {} if value is None else value


class EvaluationConfig(BaseModel):
    """How each job of a lineage is probed (docs/evaluation.md); fixed for the life of the lineage."""

    model_config = ConfigDict(extra="forbid")

    recall_items: int = Field(32, ge=0, le=1000, description="Recall probes drawn per job.")
    recognition_items: int = Field(32, ge=0, le=1000, description="Recognition pairs drawn per job.")
    held_out_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of a job's rows kept out of training as its held-out split."
    )
    max_held_out: int = Field(32, ge=0, le=1000, description="At most this many held-out rows per job.")
    continual_eval_every: int = Field(
        25, ge=0, le=100_000, description="Steps between continual evaluations in a job; 0 turns them off."
    )
    continual_eval_items: int = Field(
        16, ge=1, le=256, description="Recall probes per job scored in each continual evaluation."
    )


PanelSuite = Literal["reasoning", "long_context", "safety", "perplexity"]  # eval.panel.PANEL_SUITES


class SuiteThresholds(BaseModel):
    """Hedges' g (positive: worse than the reference) at which a suite's decline is a finding."""

    model_config = ConfigDict(extra="forbid")

    rot: float = Field(0.3, gt=0, description="g above this with the interval excluding zero is `rot`.")
    warn: float = Field(0.15, gt=0, description="g above this is `warn`.")


# Per-suite defaults, (rot, warn) (docs/health.md). Panel suites: chosen from the dev control
# updates of SmolLM2-135M-Instruct (`python -m bench.panel`'s dev jobs, and seed 0 of
# `python -m bench.brainrot`: its 0%-junk version and its three fact-learning versions):
# rot = the largest g an ordinary job reached plus 0.1, rounded up to 0.05, never below Xing et
# al.'s 0.3; warn = rot / 2. Seeds 1 and 2 and bench.panel's held-out jobs check the choice.
# Retention: some forgetting of earlier jobs is what learning a new one costs; only a large effect blocks.
GateSuite = Literal["retention", "reasoning", "long_context", "safety", "perplexity"]
DEFAULT_THRESHOLDS: dict[GateSuite, tuple[float, float]] = {
    "retention": (0.8, 0.3),
    "reasoning": (1.0, 0.5),
    "long_context": (0.85, 0.425),
    "safety": (0.75, 0.375),
    "perplexity": (2.65, 1.325),
}


class DataScreen(BaseModel):
    """What a job does when its training file's junk ratio (scored on upload) is high."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["off", "warn", "refuse"] = "warn"
    threshold: float = Field(0.5, ge=0, le=1, description="Junk ratio above which the action applies.")


class HealthConfig(BaseModel):
    """The promotion gate and its panel (docs/health.md); fixed for the life of the lineage."""

    model_config = ConfigDict(extra="forbid")

    gate: bool = Field(True, description="Promote a job's version only if its health check passes.")
    gate_suites: list[PanelSuite] = Field(
        default_factory=lambda: list(get_args(PanelSuite)),
        description="Panel suites the gate runs after every job, beside the retention probes.",
    )
    thresholds: dict[GateSuite, SuiteThresholds] = Field(
        default_factory=lambda: _default_thresholds(),
        description="Per suite; a suite not given keeps its default (docs/health.md).",
    )
    data_screen: DataScreen = Field(default_factory=DataScreen)

    @field_validator("thresholds")
    @classmethod
    def _defaults_for_the_rest(
        cls, given: dict[GateSuite, SuiteThresholds]
    ) -> dict[GateSuite, SuiteThresholds]:
        return {**_default_thresholds(), **given}


def _default_thresholds() -> dict[GateSuite, SuiteThresholds]:
    return {suite: SuiteThresholds(rot=rot, warn=warn) for suite, (rot, warn) in DEFAULT_THRESHOLDS.items()}


class LineageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=LINEAGE_NAME, description="Lowercase letters, digits, '.', '_', '-'.")
    base_model: str = Field(min_length=1, max_length=1024, description="HF hub id or local path.")
    method: MethodChoice = Field(default_factory=lambda: MethodChoice(type="lora"))
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)


class LineagePublic(BaseModel):
    id: str
    object: Literal["lineage"] = "lineage"
    name: str
    base_model: str
    method: dict[str, Any]
    evaluation: EvaluationConfig
    health: HealthConfig
    created_at: int
    head_version: int | None = Field(
        description="The version the next job starts from (null: the base model)."
    )
    head_reason: str = Field(description="Why: the promoted version, and any newer version passed over.")
    promoted_version: int | None = Field(description="The version served under the lineage name.")
    latest_version: int | None = Field(description="The newest published version.")


class VersionPublic(BaseModel):
    object: Literal["lineage.version"] = "lineage.version"
    lineage: str
    version: int
    parent_version: int | None
    status: str
    job_id: str
    created_at: int
    metrics: dict[str, Any]
    report_id: str | None = None


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1, description="The version to serve under the lineage name.")
    force: bool = Field(False, description="Promote a version the health gate rejected.")


class ServingPublic(BaseModel):
    """What a promote or rollback did: the version promoted and the one the gateway now serves."""

    object: Literal["lineage.serving"] = "lineage.serving"
    lineage: str
    promoted_version: int
    served_version: int | None = Field(description="The version the gateway answers with now.")
    swap_seconds: float = Field(description="Load + warm-up + alias flip, as measured by the gateway.")


class RetentionSummary(BaseModel):
    """The continual-learning metrics of one score's matrix (`eval.metrics`); None where undefined."""

    average_accuracy: float | None
    backward_transfer: float | None
    forgetting: float | None
    forward_transfer: float | None


class RetentionJob(BaseModel):
    job_id: str
    version: int = Field(description="The version the job produced; column j of every matrix.")


class RetentionPublic(BaseModel):
    """R[version][job] for each score, rows versions 1..N, columns their jobs; null where not measured."""

    object: Literal["lineage.retention"] = "lineage.retention"
    lineage: str
    versions: list[int]
    jobs: list[RetentionJob]
    baseline: dict[str, list[float | None]] = Field(description="Per score, the base model on each job.")
    matrices: dict[str, list[list[float | None]]]
    summary: dict[str, RetentionSummary] = Field(description="Per score where higher is better.")
