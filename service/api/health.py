"""`/healthz` (the process is up) and `/readyz` (the database answers and serving is ready)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.database.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as error:  # any database failure means "not ready", never a crash
        return JSONResponse({"status": "unavailable", "database": str(error)[:200]}, 503)
    tier = request.app.state.serving
    if tier is None:
        return JSONResponse({"status": "ok", "database": "ok", "serving": "disabled"})
    ready, reason = tier.ready()
    if not ready:
        return JSONResponse({"status": "unavailable", "database": "ok", "serving": reason}, 503)
    return JSONResponse({"status": "ok", "database": "ok", "serving": "ok"})
