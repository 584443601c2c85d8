"""The FastAPI application: `create_app(settings)` wires routers, errors and the database."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, ProcessCollector

from service.api import api_router, health, metrics
from service.background.deliverer import Deliverer
from service.background.scheduler import Scheduler
from service.db import Database
from service.errors import install_error_handlers
from service.limits import BodyLimit
from service.observability.logs import RequestLogContext
from service.observability.metrics import DatabaseCollector
from service.services.keys import TenantCache
from service.services.quotas import RateLimiter
from service.serving.tier import ServingTier
from service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; the schema is migrated to the newest version on start-up."""
    settings = settings or Settings()
    database = Database(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database.migrate()
        if settings.serving:
            app.state.serving = ServingTier(settings, database)
            app.state.metrics.register(app.state.serving.metrics)
            await app.state.serving.start()
        scheduler = asyncio.create_task(Scheduler(settings, database).run(), name="health-check scheduler")
        deliverer = None
        if settings.webhook_delivery:
            deliverer = asyncio.create_task(Deliverer(settings, database).run(), name="webhook deliverer")
        yield
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        if deliverer is not None:
            deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer
        if app.state.serving is not None:
            await app.state.serving.stop()
        database.dispose()

    app = FastAPI(title="Neuroplast", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.serving = None
    app.state.tenant_cache = TenantCache(database)
    app.state.rate_limiter = RateLimiter(settings.gateway_requests_per_second, settings.gateway_burst)
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(DatabaseCollector(database))
    ProcessCollector(registry=app.state.metrics)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(RequestLogContext)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(api_router)
    return app
