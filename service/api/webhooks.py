"""`/v1/webhooks`: a tenant's signed-webhook endpoints and their delivery logs."""

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.schemas.common import ListPage
from service.schemas.webhooks import (
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookPublic,
)
from service.services import quotas, webhooks
from trainers.contracts.statuses import DeliveryStatus

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> WebhookCreated:
    quotas.check_quota(session, settings, tenant, "max_webhook_endpoints")
    endpoint = webhooks.create_endpoint(
        session, tenant, body.url, list(body.event_types), settings.webhook_private_networks
    )
    return WebhookCreated(**webhook_public(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", response_model=ListPage[WebhookPublic])
def list_webhooks(
    session: SessionDep, tenant: TenantDep, after: str | None = None, limit: Limit = 20
) -> ListPage[WebhookPublic]:
    rows, has_more = webhooks.list_endpoints(session, tenant, after, limit)
    return ListPage(data=[webhook_public(row) for row in rows], has_more=has_more)


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get_webhook(webhook_id: str, session: SessionDep, tenant: TenantDep) -> WebhookPublic:
    return webhook_public(webhooks.get_endpoint(session, tenant, webhook_id))


@router.delete("/{webhook_id}", response_model=WebhookDeleted)
def delete_webhook(webhook_id: str, session: SessionDep, tenant: TenantDep) -> WebhookDeleted:
    return WebhookDeleted(id=webhooks.delete_endpoint(session, tenant, webhook_id).id)


@router.get("/{webhook_id}/deliveries", response_model=ListPage[DeliveryPublic])
def list_deliveries(
    webhook_id: str, session: SessionDep, tenant: TenantDep, after: str | None = None, limit: Limit = 20
) -> ListPage[DeliveryPublic]:
    endpoint = webhooks.get_endpoint(session, tenant, webhook_id)
    rows, has_more = webhooks.list_deliveries(session, endpoint, after, limit)
    return ListPage(data=[delivery_public(row, event) for row, event in rows], has_more=has_more)


def webhook_public(row: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(id=row.id, url=row.url, event_types=row.event_types, created_at=row.created_at)


def delivery_public(row: WebhookDelivery, event: WebhookEvent) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        event_id=event.id,
        event_type=event.type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        last_attempt_at=row.last_attempt_at,
        response_status=row.response_status,
        error=row.error,
        created_at=row.created_at,
        payload=event.payload,
    )
