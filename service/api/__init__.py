"""HTTP routers: thin handlers that parse a schema, call one service function and map the result."""

from fastapi import APIRouter

from service.api import (
    files,
    gateway,
    health,
    health_checks,
    jobs,
    keys,
    lineages,
    reports,
    schedules,
    webhooks,
)
from service.schemas.errors import CLIENT_ERRORS

api_router = APIRouter(prefix="/v1", responses=CLIENT_ERRORS)
api_router.include_router(files.router)
api_router.include_router(lineages.router)
api_router.include_router(jobs.router)
api_router.include_router(health_checks.router)
api_router.include_router(schedules.router)
api_router.include_router(reports.router)
api_router.include_router(gateway.router)
api_router.include_router(webhooks.router)
api_router.include_router(keys.router)

__all__ = ["api_router", "health"]
