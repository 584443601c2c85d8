"""The OpenAI-compatible gateway: `/v1/models`, `/v1/completions`, `/v1/chat/completions`."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from service.deps import bearer_key, invalid_key
from service.errors import ApiError
from service.observability.logs import bind
from service.schemas.errors import UNAVAILABLE
from service.serving import gateway
from service.serving.tier import ServingTier

router = APIRouter(tags=["gateway"], responses=UNAVAILABLE)


async def gateway_tenant(request: Request) -> str:
    """The caller's tenant name, from a short-lived cache: the hot path does no database work.

    Each request spends one token of the tenant's rate limit (429 with `retry-after` when none is left).
    """
    tenant: str | None = await request.app.state.tenant_cache.tenant(bearer_key(request))
    if tenant is None:
        raise invalid_key()
    bind(tenant=tenant)
    request.app.state.rate_limiter.take(tenant)
    return tenant


TenantName = Annotated[str, Depends(gateway_tenant)]


@router.get("/models")
async def list_models(request: Request, tenant: TenantName) -> dict[str, Any]:
    return {"object": "list", "data": gateway.list_models(_tier(request), tenant)}


@router.post("/completions")
async def completions(request: Request, tenant: TenantName) -> Response:
    return await _forward(request, tenant, "/v1/completions")


@router.post("/chat/completions")
async def chat_completions(request: Request, tenant: TenantName) -> Response:
    return await _forward(request, tenant, "/v1/chat/completions")


async def _forward(request: Request, tenant: str, path: str) -> Response:
    started = time.perf_counter()
    try:
        body = await request.json()
    except (ValueError, RecursionError) as error:  # RecursionError: JSON nested too deep
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from error
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    tier = _tier(request)
    try:
        answer = await gateway.forward(tier, tenant, path, body)
    except ApiError as error:
        tier.metrics.observe_request(None, tenant, error.status, started)
        raise
    model = answer.headers["x-neuroplast-model"]
    if answer.stream is not None:  # counted once its last byte is sent
        counted = BackgroundTask(_observe, tier, model, tenant, answer.status, started)
        return StreamingResponse(
            answer.stream, media_type=answer.media_type, headers=answer.headers, background=counted
        )
    tier.metrics.observe_request(model, tenant, answer.status, started)
    return Response(answer.body, answer.status, headers=answer.headers, media_type=answer.media_type)


async def _observe(tier: ServingTier, model: str, tenant: str, status: int, started: float) -> None:
    # Async, so Starlette runs it on the event loop rather than hopping to the thread pool.
    tier.metrics.observe_request(model, tenant, status, started)


def _tier(request: Request) -> ServingTier:
    tier: ServingTier | None = request.app.state.serving
    if tier is None:
        raise ApiError(
            503, "Serving is disabled on this server (NEUROPLAST_SERVING=false).", code="not_ready"
        )
    return tier
