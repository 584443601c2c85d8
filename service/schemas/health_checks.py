"""Health-check shapes."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.lineages import LINEAGE_NAME

DEFAULT_LINK_SECONDS = 15 * 60  # a report link: long enough to open and read, short enough to leak little
MAX_LINK_SECONDS = 24 * 3600

Suite = Literal["retention", "reasoning", "long_context", "safety", "perplexity"]
SUITES: tuple[Suite, ...] = ("retention", "reasoning", "long_context", "safety", "perplexity")


class HealthCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lineage: str = Field(pattern=LINEAGE_NAME)
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="Defaults to the promoted version.")
    suites: list[Suite] = Field(
        default_factory=lambda: list(SUITES),
        min_length=1,
        description="retention (every job's probes) and health-panel suites; all by default.",
    )


class HealthCheckPublic(BaseModel):
    id: str
    object: Literal["health_check"] = "health_check"
    lineage: str
    version: int
    suites: list[str]
    status: str = Field(description="queued | running | succeeded | failed")
    created_at: int
    started_at: int | None
    finished_at: int | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None = Field(
        description="`verdict`, `report_id`, per suite the comparison with the reference, and "
        "`retention`: per job id, the version's scores on that job's probes."
    )
    report_id: str | None = Field(None, description="The report, once the check succeeded.")
    schedule_id: str | None = Field(None, description="The schedule that queued it, if any.")


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lineage: str = Field(pattern=LINEAGE_NAME)
    cron: str = Field(min_length=9, max_length=128, description="Five-field cron expression, in UTC.")
    suites: list[Suite] = Field(default_factory=lambda: list(SUITES), min_length=1)


class SchedulePublic(BaseModel):
    id: str
    object: Literal["health_check_schedule"] = "health_check_schedule"
    lineage: str
    cron: str
    suites: list[str]
    next_run_at: int = Field(description="Unix seconds of the next due run.")
    last_run_at: int | None
    created_at: int


class ReportPublic(BaseModel):
    """A health report's JSON body (also written to the artifact store with its HTML page)."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["health_report"] = "health_report"
    lineage: str
    version: int
    reference_version: int
    verdict: str
    created_at: int


class ReportLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int = Field(
        DEFAULT_LINK_SECONDS, ge=1, le=MAX_LINK_SECONDS, description="Seconds the link stays valid."
    )


class ReportLinkPublic(BaseModel):
    object: Literal["health_report.link"] = "health_report.link"
    report_id: str
    url: str = Field(description="The report's HTML page; a browser opens it without an API key.")
    expires_at: int = Field(description="Unix seconds after which the link no longer opens.")
