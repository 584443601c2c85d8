"""`GET /metrics`: Prometheus text format, for platform keys and the scraper's `metrics_token`.

Not open to anyone on the network: the gateway series name tenants and lineages, which other
tenants must not learn (docs/security.md). Prometheus sends the token as a bearer credential.
"""

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import SessionDep, SettingsDep, bearer_key, invalid_key
from service.errors import ApiError
from service.services.keys import authenticate

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    secret = bearer_key(request)
    token = settings.metrics_token
    if token is None or not hmac.compare_digest(secret.encode(), token.encode()):
        key = authenticate(session, secret)
        if key is None:
            raise invalid_key()
        if key.scope != "platform":
            raise ApiError(
                403, "Reading /metrics needs a platform key or the metrics token.", code="insufficient_scope"
            )
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
