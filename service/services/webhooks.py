"""Signed webhooks (Standard Webhooks): endpoints per tenant, the event outbox and its delivery log.

`emit` writes an event and one pending delivery per subscribed endpoint inside the caller's
transaction, the one that makes the state change the event reports: the change and its event
commit together or not at all, so no event is lost when a process dies. The deliverer
(`service.background.deliverer`) sends what is pending, signed, and retries with exponential backoff.
"""

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import ApiError, not_found
from service.models import (
    Job,
    Lineage,
    Tenant,
    Version,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    now,
)
from service.services.model_names import version_name
from service.services.paging import page
from trainers.contracts.statuses import DeliveryStatus, JobStatus

EVENT_TYPES = (
    "fine_tuning.job.succeeded",
    "fine_tuning.job.failed",
    "fine_tuning.job.cancelled",
    "lineage.version.promoted",
    "lineage.version.rejected",
)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks: secrets of 24 to 64 random bytes


def emit(session: Session, tenant_pk: int, type: str, data: dict[str, Any]) -> WebhookEvent:
    """Record an event for the tenant's subscribed endpoints, in the caller's transaction.

    Call it in the same transaction as the state change it reports, e.g. where a health gate
    rejects a version: `emit(session, lineage.tenant_pk, "lineage.version.rejected",
    version_data(lineage, version))`.

    Args:
        session: The open session of the state change.
        tenant_pk: The tenant whose endpoints receive the event.
        type: One of EVENT_TYPES.
        data: The event's `data` object (JSON-serializable).

    Returns:
        The stored event; its payload is `{id, object: "event", created_at, type, data}`.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    event_id = f"evt_{secrets.token_hex(12)}"
    created_at = now()
    payload = {"id": event_id, "object": "event", "created_at": created_at, "type": type, "data": data}
    event = WebhookEvent(id=event_id, tenant_pk=tenant_pk, type=type, payload=payload, created_at=created_at)
    session.add(event)
    session.flush()
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_pk == tenant_pk, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    for endpoint in endpoints:
        if not endpoint.event_types or type in endpoint.event_types:
            session.add(
                WebhookDelivery(
                    id=f"whdel_{secrets.token_hex(12)}",
                    event_pk=event.pk,
                    endpoint_pk=endpoint.pk,
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=time.time(),
                )
            )
    return event


def job_data(session: Session, job: Job) -> dict[str, Any]:
    """The `data` of a `fine_tuning.job.*` event."""
    lineage = session.get_one(Lineage, job.lineage_pk)
    succeeded = job.status == JobStatus.SUCCEEDED
    return {
        "id": job.id,
        "status": job.status,
        "model": lineage.name,
        "fine_tuned_model": (
            version_name(lineage.name, job.version_number, job.suffix)
            if succeeded and job.version_number is not None
            else None
        ),
        "error": job.error,
    }


def version_data(lineage: Lineage, version: Version) -> dict[str, Any]:
    """The `data` of a `lineage.version.*` event."""
    return {
        "lineage": lineage.name,
        "version": version.number,
        "status": version.status,
        "job_id": version.job_id,
        "model": f"{lineage.name}@{version.number}",
    }


def create_endpoint(
    session: Session, tenant: Tenant, url: str, event_types: list[str], private_networks: bool
) -> WebhookEndpoint:
    """A new endpoint of the tenant with a fresh `whsec_` secret (shown to the caller once)."""
    check_url(url, private_networks)
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    endpoint = WebhookEndpoint(
        id=f"we_{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        url=url,
        secret=secret,
        event_types=sorted(set(event_types)),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(session: Session, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    """The tenant's live endpoint with this id, or a 404."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.tenant_pk == tenant.pk,
            WebhookEndpoint.deleted_at.is_(None),
        )
    )
    if endpoint is None:
        raise not_found("webhook endpoint", endpoint_id, "webhook_id")
    return endpoint


def list_endpoints(
    session: Session, tenant: Tenant, after: str | None, limit: int
) -> tuple[list[WebhookEndpoint], bool]:
    """The tenant's live endpoints, newest first."""
    scope = (WebhookEndpoint.tenant_pk == tenant.pk) & WebhookEndpoint.deleted_at.is_(None)
    return page(session, WebhookEndpoint, scope, after, limit)


def delete_endpoint(session: Session, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    """Stop delivering to an endpoint; its pending deliveries end as `cancelled`, its log stays."""
    endpoint = get_endpoint(session, tenant, endpoint_id)
    endpoint.deleted_at = now()
    pending = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_pk == endpoint.pk, WebhookDelivery.status == DeliveryStatus.PENDING
    )
    for delivery in session.scalars(pending):
        delivery.status, delivery.error = DeliveryStatus.CANCELLED, "The endpoint was deleted."
    return endpoint


def list_deliveries(
    session: Session, endpoint: WebhookEndpoint, after: str | None, limit: int
) -> tuple[list[tuple[WebhookDelivery, WebhookEvent]], bool]:
    """An endpoint's delivery log, newest first, each delivery with its event."""
    rows, has_more = page(session, WebhookDelivery, WebhookDelivery.endpoint_pk == endpoint.pk, after, limit)
    return [(row, session.get_one(WebhookEvent, row.event_pk)) for row in rows], has_more


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address


def check_url(url: str, private_networks: bool) -> None:
    """A 400 unless `url` is http(s) with a valid host and port, and (unless allowed) not a private
    address. Whatever passes here is a URL the deliverer can connect to, so one tenant's endpoint
    can never fail a delivery round for the others."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "url: must be an http or https URL with a host.", param="url", code="invalid_url")
    if parts.username or parts.password:
        raise ApiError(400, "url: must not hold credentials.", param="url", code="invalid_url")
    try:
        parts.port  # noqa: B018 (the property raises on a port out of range)
        parts.hostname.encode("idna")  # raises on an empty label or one over 63 characters
    except (ValueError, UnicodeError) as error:
        raise ApiError(400, f"url: {error}.", param="url", code="invalid_url") from error
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name: resolved and checked at every delivery (`service.background.deliverer`)
    if not private_networks and not is_public(address):
        raise ApiError(
            400,
            f"url: {address} is not a public address (NEUROPLAST_WEBHOOK_PRIVATE_NETWORKS allows it).",
            param="url",
            code="invalid_url",
        )


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is globally routable: not loopback, private, link-local or reserved.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, NAT64's well-known prefix) is as
    public as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if (embedded := address.ipv4_mapped or address.sixtofour) is not None:
            return is_public(embedded)
        if address in NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return address.is_global and not address.is_multicast
