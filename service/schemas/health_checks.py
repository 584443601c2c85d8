"""Health-check shapes."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.lineages import LINEAGE_NAME

SUITES = ("retention",)


class HealthCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lineage: str = Field(pattern=LINEAGE_NAME)
    version: int | None = Field(None, ge=1, description="Defaults to the promoted version.")
    suites: list[Literal["retention"]] = Field(
        default_factory=lambda: list(SUITES), min_length=1, description="What to run: retention."
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
        description="Per suite; `retention`: per job id, the version's scores on that job's probes."
    )
