"""The gateway's domain logic: resolve a tenant's model name, forward the request, count it in flight.

Bodies stream through unchanged (vLLM's bytes), so the gateway costs one hop and no re-encoding;
the `x-neuroplast-model` header names the immutable version that answered. A replica that fails
is logged with its URL; the client hears only that serving is unavailable for now.
"""

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from service.errors import ApiError
from service.serving.replica import Replica
from service.serving.tier import Served, ServingTier, unavailable
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Forwarded:
    """A backend's answer: either a whole `body` or a `stream` of bytes."""

    status: int
    media_type: str
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


async def forward(tier: ServingTier, tenant: str, path: str, body: dict[str, Any]) -> Forwarded:
    """Send a completion request to the version `body["model"]` resolves to for this tenant."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: a lineage name or '<lineage>@<N>' is required.", param="model")
    _check_size(body, tier.settings)
    replica, served = await tier.route(tenant, model)
    headers = {"x-neuroplast-model": served.name}
    payload = json.dumps({**body, "model": served.name}).encode()
    try:
        response = await replica.send_completion(path, payload)
    except (TimeoutError, aiohttp.ClientError) as error:
        tier.release(served)
        raise _replica_failed(tier, replica, served, error) from error
    media_type = response.headers.get("content-type", "application/json")
    if not body.get("stream") or response.status != 200:
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _replica_failed(tier, replica, served, error) from error
        finally:
            response.release()
            tier.release(served)
        return Forwarded(response.status, media_type, headers, body=content)
    return Forwarded(200, media_type, headers, stream=_relay(tier, served, response))


def _replica_failed(tier: ServingTier, replica: Replica, served: Served, error: Exception) -> ApiError:
    """Take the replica out of rotation and say so without its address."""
    log.warning("replica %s failed a request for %s: %r", replica.url, served.name, error)
    replica.ready = False  # until the reconciler finds it alive with its adapters again
    tier.nudge()
    return unavailable("The serving replica did not answer; try again shortly.")


def _check_size(body: dict[str, Any], settings: Settings) -> None:
    """A 400 for a request whose output alone would hold a backend for every tenant (any backend:
    the native one decodes a whole batch together, so one long request holds up its batch)."""
    limits = {
        "max_tokens": settings.gateway_max_tokens,
        "max_completion_tokens": settings.gateway_max_tokens,
        "n": settings.gateway_max_choices,
        "best_of": settings.gateway_max_choices,
    }
    for field, limit in limits.items():
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ApiError(
                400, f"{field}: must be an integer from 0 to {limit}.", param=field, code="invalid_request"
            )


async def _relay(tier: ServingTier, served: Served, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for chunk in response.content.iter_any():
            yield chunk
        finished = True
    finally:
        if finished:
            response.release()  # the connection goes back to the pool
        else:
            response.close()  # the client left: closing the connection makes vLLM abort the request
        tier.release(served)


def list_models(tier: ServingTier, tenant: str) -> list[dict[str, Any]]:
    """The tenant's servable names: each lineage alias and each loaded `<lineage>@<N>`."""
    models = []
    for (owner, lineage), served in sorted(tier.aliases.items()):
        if owner == tenant:
            models.append(_model(lineage, served))
            models.append(_model(f"{lineage}@{served.version}", served))
    for served in tier.pinned.values():
        name = f"{served.lineage}@{served.version}"
        if served.tenant == tenant and all(model["id"] != name for model in models):
            models.append(_model(name, served))
    return models


def _model(name: str, served: Served) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": served.tenant,
        "lineage": served.lineage,
        "version": served.version,
        "base_model": served.base_model,
    }
