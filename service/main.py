"""The FastAPI application: `create_app(settings)` wires routers, errors and the database."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import api_router, health
from service.db import Database
from service.errors import install_error_handlers
from service.services.keys import TenantCache
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
            await app.state.serving.start()
        yield
        if app.state.serving is not None:
            await app.state.serving.stop()
        database.dispose()

    app = FastAPI(title="Neuroplast", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.serving = None
    app.state.tenant_cache = TenantCache(database)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(api_router)
    return app
