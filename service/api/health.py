"""`/healthz` (the process is up) and `/readyz` (the database answers and serving is ready).

Both need no key: load balancers and orchestrators probe them. So `/readyz` answers with fixed
words only; why serving is not ready names tenants' versions and base model paths, and a
database error names hosts and files, none of which another tenant or the network may learn
(docs/security.md). The reason goes to the log, and into the answer only for a platform key.
"""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.deps import bearer_key
from service.errors import ApiError
from service.services.keys import authenticate

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.database.session() as session:
            session.execute(text("SELECT 1"))
            platform = _is_platform(session, request)
    except Exception:  # any database failure means "not ready", never a crash
        log.exception("not ready: the database does not answer")
        return JSONResponse({"status": "unavailable", "database": "unavailable"}, 503)
    tier = request.app.state.serving
    if tier is None:
        return JSONResponse({"status": "ok", "database": "ok", "serving": "disabled"})
    ready, reason = tier.ready()
    if ready:
        return JSONResponse({"status": "ok", "database": "ok", "serving": "ok"})
    log.info("not ready: %s", reason)
    serving = reason if platform else "unavailable"
    return JSONResponse({"status": "unavailable", "database": "ok", "serving": serving}, 503)


def _is_platform(session: Session, request: Request) -> bool:
    """Whether the request carries a platform key; a missing or wrong key is no error here (probes)."""
    try:
        key = authenticate(session, bearer_key(request))
    except ApiError:
        return False
    return key is not None and key.scope == "platform"
