"""The webhook deliverer: sends pending deliveries from the outbox, signed, retrying with backoff.

Runs as a task in the API process. Each round follows load -> process -> apply: claim due
deliveries in one short transaction (a compare-and-swap on `attempts`, so two deliverers never send
the same attempt), send them with no transaction open, then record each answer. A claimed delivery
whose deliverer dies is due again after `2 x webhook_timeout_seconds`.
"""

import asyncio
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update

from service.db import Database
from service.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, now
from service.services.webhooks import is_public, sign
from service.settings import Settings

log = logging.getLogger(__name__)

BATCH = 32
BACKOFF_FACTOR = 4  # 5 s, 20 s, 80 s, ...: about 7.5 h over 8 attempts (Svix retries over about a day)


@dataclass(frozen=True)
class Attempt:
    """One claimed try of one delivery."""

    delivery_pk: int
    number: int
    endpoint_id: str
    url: str
    secret: str
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What the receiver answered: a status code, or why there was none."""

    attempt: Attempt
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Deliverer:
    """Delivers due webhook events until cancelled."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    async def run(self) -> None:
        """Deliver due events; sleep `webhook_poll_seconds` when there were none."""
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds) as client:
            while True:
                try:
                    sent = await self.deliver_due(client)
                except Exception:  # a database hiccup: log it and try again next round
                    log.exception("webhook delivery round failed")
                    sent = 0
                if sent == 0:
                    await asyncio.sleep(self.settings.webhook_poll_seconds)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """One round: claim, send and record up to BATCH due deliveries; returns how many were sent."""
        attempts = await asyncio.to_thread(self._claim)
        if not attempts:
            return 0
        outcomes = await asyncio.gather(*(self._send(client, attempt) for attempt in attempts))
        await asyncio.to_thread(self._record, outcomes)
        return len(attempts)

    def _claim(self) -> list[Attempt]:
        started = time.time()
        query = (
            select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
            .join(WebhookEndpoint, WebhookEndpoint.pk == WebhookDelivery.endpoint_pk)
            .join(WebhookEvent, WebhookEvent.pk == WebhookDelivery.event_pk)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= started)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH)
        )
        attempts = []
        with self.database.session() as session:
            for delivery, endpoint, event in session.execute(query).all():
                if delivery.attempts >= self.settings.webhook_max_attempts:  # its last attempt's outcome
                    delivery.status = "failed"  # was lost (a crash between claim and record)
                    continue
                number = delivery.attempts + 1  # read first: the UPDATE below syncs `delivery` too
                taken = session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.pk == delivery.pk,
                        WebhookDelivery.attempts == number - 1,
                        WebhookDelivery.status == "pending",
                    )
                    .values(
                        attempts=number,
                        next_attempt_at=started + 2 * self.settings.webhook_timeout_seconds,
                    )
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    attempts.append(
                        Attempt(
                            delivery.pk,
                            number,
                            endpoint.id,
                            endpoint.url,
                            endpoint.secret,
                            event.id,
                            event.payload,
                        )
                    )
        return attempts

    async def _send(self, client: httpx.AsyncClient, attempt: Attempt) -> Outcome:
        """Make one attempt; never raises, and never takes longer than `webhook_timeout_seconds`.

        Whatever one endpoint does (a URL that cannot be connected to, a receiver that trickles its
        answer a byte at a time) ends as this attempt's outcome, so the round's other deliveries,
        other tenants' included, are recorded as usual.
        """
        timeout = self.settings.webhook_timeout_seconds
        try:
            return await asyncio.wait_for(self._post(client, attempt), timeout)
        except TimeoutError:
            return Outcome(attempt, None, f"no answer within {timeout:g} s")
        except Exception as error:
            # The message names the failure, not the URL (which may carry a receiver's token).
            return Outcome(attempt, None, f"{type(error).__name__}: {str(error)[:300]}")

    async def _post(self, client: httpx.AsyncClient, attempt: Attempt) -> Outcome:
        refused = None if self.settings.webhook_private_networks else await _private_address(attempt.url)
        if refused is not None:
            return Outcome(attempt, None, refused)
        body = json.dumps(attempt.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Neuroplast-Webhooks/0.1",
            "webhook-id": attempt.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(attempt.secret, attempt.message_id, timestamp, body),
        }
        # The status line is the answer; the body is never read (a receiver could send gigabytes).
        async with client.stream("POST", attempt.url, content=body, headers=headers) as response:
            status = response.status_code
        return Outcome(attempt, status, None if 200 <= status < 300 else f"HTTP {status}")

    def _record(self, outcomes: list[Outcome]) -> None:
        with self.database.session() as session:
            for outcome in outcomes:
                delivery = session.get_one(WebhookDelivery, outcome.attempt.delivery_pk)
                if delivery.status != "pending" or delivery.attempts != outcome.attempt.number:
                    continue  # the endpoint was deleted meanwhile, or another deliverer took over
                delivery.last_attempt_at = now()
                delivery.response_status, delivery.error = outcome.status, outcome.error
                if outcome.delivered:
                    delivery.status = "succeeded"
                elif delivery.attempts >= self.settings.webhook_max_attempts:
                    delivery.status = "failed"
                    log.warning("webhook %s to %s failed for good", delivery.id, outcome.attempt.endpoint_id)
                else:
                    wait = self.settings.webhook_backoff_seconds * BACKOFF_FACTOR ** (delivery.attempts - 1)
                    delivery.next_attempt_at = time.time() + wait


async def _private_address(url: str) -> str | None:
    """Why `url` may not be called (its host resolves to a non-public address), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as error:
        return f"could not resolve the host: {error}"
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not is_public(address):  # which address stays unsaid: internal DNS answers are not the tenant's
            return "the host resolves to an address that is not public"
    return None
