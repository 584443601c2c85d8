"""Lineage and version shapes."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LINEAGE_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class MethodSpec(BaseModel):
    """`{type, <type>: {...config}}`; the config is checked against the method's dataclass."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="lora | replay | ilora | titans | trc")

    @model_validator(mode="after")
    def _only_own_config(self) -> "MethodSpec":
        others = sorted(set(self.model_extra or {}) - {self.type})
        if others:
            raise ValueError(f"unexpected key(s) {others}: only '{self.type}' may hold a config")
        return self

    @property
    def config(self) -> Any:
        """The user's config as sent; the method registry checks its shape and fields."""
        value = (self.model_extra or {}).get(self.type)
        return {} if value is None else value


class LineageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=LINEAGE_NAME, description="Lowercase letters, digits, '.', '_', '-'.")
    base_model: str = Field(min_length=1, max_length=1024, description="HF hub id or local path.")
    method: MethodSpec = Field(default_factory=lambda: MethodSpec(type="lora"))


class LineagePublic(BaseModel):
    id: str
    object: Literal["lineage"] = "lineage"
    name: str
    base_model: str
    method: dict[str, Any]
    created_at: int
    head_version: int | None = Field(description="The version the next job starts from.")
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

    version: int = Field(ge=1, description="The version to serve under the lineage name.")


class ServingPublic(BaseModel):
    """What a promote or rollback did: the version promoted and the one the gateway now serves."""

    object: Literal["lineage.serving"] = "lineage.serving"
    lineage: str
    promoted_version: int
    served_version: int | None = Field(description="The version the gateway answers with now.")
    swap_seconds: float = Field(description="Load + warm-up + alias flip, as measured by the gateway.")
