"""Webhook endpoint and delivery shapes."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "fine_tuning.job.succeeded",
    "fine_tuning.job.failed",
    "fine_tuning.job.cancelled",
    "lineage.version.promoted",
    "lineage.version.rejected",
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="An http(s) URL that receives POSTs.")
    event_types: list[EventType] = Field(
        default_factory=list, max_length=16, description="The events to send; empty: every event."
    )


class WebhookPublic(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    event_types: list[str]
    created_at: int


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="`whsec_<base64>`: verifies `webhook-signature` (Standard Webhooks); shown only here."
    )


class WebhookDeleted(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: bool = True


class DeliveryPublic(BaseModel):
    id: str
    object: Literal["webhook.delivery"] = "webhook.delivery"
    event_id: str = Field(description="Also the `webhook-id` header the receiver got.")
    event_type: str
    status: str = Field(description="pending | succeeded | failed | cancelled")
    attempts: int
    next_attempt_at: float | None = Field(description="When the next try is due (pending only).")
    last_attempt_at: int | None
    response_status: int | None = Field(description="The receiver's HTTP status on the last try.")
    error: str | None
    created_at: int
    payload: dict[str, Any] = Field(description="The event as sent: {id, object, created_at, type, data}.")
