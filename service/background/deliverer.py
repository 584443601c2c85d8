"""The webhook deliverer: sends pending deliveries from the outbox, signed, retrying with backoff.

Runs as a task in the API process. Each round follows load -> process -> apply: claim due
deliveries in one short transaction (a compare-and-swap on `attempts`, so two deliverers never send
the same attempt), send them with no transaction open, then record each answer. A claimed delivery
whose deliverer dies is due again after `2 x webhook_timeout_seconds`.

A receiver's name is resolved once per attempt, the addresses are checked, and the request goes
to a checked address: were the HTTP client to resolve the name again, a DNS server that answers a
public address first and an internal one next (rebinding) would get past the check.
"""

import asyncio
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update

from service.db import Database
from service.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, now
from service.services.webhooks import is_public, sign
from service.settings import Settings
from trainers.contracts.statuses import DeliveryStatus

log = logging.getLogger(__name__)

BATCH = 32
BACKOFF_FACTOR = 4  # 5 s, 20 s, 80 s, ...: about 7.5 h over 8 attempts (Svix retries over about a day)
DEFAULT_PORTS = {"http": 80, "https": 443}


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
        # No connection is kept: the pool knows a connection by its address, and one whose TLS was
        # checked for one name must not carry a request for another name on the same address.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds, limits=no_reuse
        ) as client:
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
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= started
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH)
        )
        attempts = []
        with self.database.session() as session:
            for delivery, endpoint, event in session.execute(query).all():
                if delivery.attempts >= self.settings.webhook_max_attempts:  # its last attempt's outcome
                    delivery.status = DeliveryStatus.FAILED  # was lost (a crash between claim and record)
                    continue
                number = delivery.attempts + 1  # read first: the UPDATE below syncs `delivery` too
                taken = session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.pk == delivery.pk,
                        WebhookDelivery.attempts == number - 1,
                        WebhookDelivery.status == DeliveryStatus.PENDING,
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
        url = httpx.URL(attempt.url)
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS want it
        try:
            addresses = await _checked_addresses(
                host, url.port or DEFAULT_PORTS[url.scheme], self.settings.webhook_private_networks
            )
        except Refused as refused:
            return Outcome(attempt, None, str(refused))
        body = json.dumps(attempt.payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "host": url.netloc.decode("ascii"),
            "content-type": "application/json",
            "user-agent": "Neuroplast-Webhooks/0.1",
            "webhook-id": attempt.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(attempt.secret, attempt.message_id, timestamp, body),
        }
        for address in addresses:  # in the resolver's order, the next when one refuses, as for a name
            try:
                status = await _status(client, url, address, body, headers)
            except httpx.ConnectError as error:
                failure = error
                continue
            except httpx.TransportError as error:
                return Outcome(attempt, None, _error_without(error, addresses))
            return Outcome(attempt, status, None if 200 <= status < 300 else f"HTTP {status}")
        return Outcome(attempt, None, _error_without(failure, addresses))

    def _record(self, outcomes: list[Outcome]) -> None:
        with self.database.session() as session:
            for outcome in outcomes:
                delivery = session.get_one(WebhookDelivery, outcome.attempt.delivery_pk)
                if delivery.status != DeliveryStatus.PENDING or delivery.attempts != outcome.attempt.number:
                    continue  # the endpoint was deleted meanwhile, or another deliverer took over
                delivery.last_attempt_at = now()
                delivery.response_status, delivery.error = outcome.status, outcome.error
                if outcome.delivered:
                    delivery.status = DeliveryStatus.SUCCEEDED
                elif delivery.attempts >= self.settings.webhook_max_attempts:
                    delivery.status = DeliveryStatus.FAILED
                    log.warning("webhook %s to %s failed for good", delivery.id, outcome.attempt.endpoint_id)
                else:
                    wait = self.settings.webhook_backoff_seconds * BACKOFF_FACTOR ** (delivery.attempts - 1)
                    delivery.next_attempt_at = time.time() + wait


class Refused(Exception):
    """An attempt that is not sent; the message says why, as the delivery log shows it."""


async def _checked_addresses(host: str, port: int, private_networks: bool) -> list[str]:
    """The addresses `host` resolves to, each checked to be public unless private ones are allowed.

    Raises:
        Refused: The name does not resolve, or one of its addresses is not public.
    """
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Refused(f"could not resolve the host: {error}") from error
    addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))
    for address in addresses:
        if not private_networks and not is_public(ipaddress.ip_address(address.split("%")[0])):
            # Which address stays unsaid: internal DNS answers are not the tenant's to learn.
            raise Refused("the host resolves to an address that is not public")
    return addresses


async def _status(
    client: httpx.AsyncClient, url: httpx.URL, address: str, body: bytes, headers: dict[str, str]
) -> int:
    """POST `body` to `address`; the Host header (in `headers`), SNI and certificate check stay on
    the URL's name. Only the status line is read: the body could be gigabytes."""
    pinned = url.copy_with(host=address)
    sni = {"sni_hostname": url.raw_host.decode("ascii")}
    async with client.stream("POST", pinned, content=body, headers=headers, extensions=sni) as response:
        return response.status_code


def _error_without(error: Exception, addresses: list[str]) -> str:
    """The attempt's error, with the addresses the name resolved to left out (the log is the tenant's)."""
    message = str(error)[:300]
    for address in addresses:
        message = message.replace(address, "<address>")
    return f"{type(error).__name__}: {message}"
