"""API key and tenant shapes (key-management endpoints)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.services.keys import TENANT_NAME


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TENANT_NAME, description="Lowercase letters, digits, '_', '-'.")


class TenantPublic(BaseModel):
    id: str = Field(description="The tenant's name.")
    object: Literal["tenant"] = "tenant"
    name: str
    created_at: int


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(pattern=TENANT_NAME, description="An existing tenant (a tenant admin: its own).")
    scope: Literal["member", "admin", "platform"] = Field(
        "member", description="member; admin (manages its tenant's keys); platform (the operator's)."
    )
    name: str | None = Field(None, max_length=64, description="A label, e.g. who uses the key.")


class KeyPublic(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    tenant: str
    scope: str
    name: str | None
    created_at: int
    revoked_at: int | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself; shown only in this answer, stored as a salted hash.")
