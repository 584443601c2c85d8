"""The control plane's scheduler: queues the health checks whose schedules fell due."""

import asyncio
import logging
import time

from service.db import Database
from service.observability.logs import log_context
from service.services.schedules import due_checks
from service.settings import Settings

log = logging.getLogger(__name__)


class Scheduler:
    """Every `schedule_poll_seconds`, queue one health check per due schedule (exactly once each)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    async def run(self) -> None:
        """Poll until cancelled; a failed pass is logged and retried at the next tick."""
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(self.settings.schedule_poll_seconds)

    def run_once(self, now: float | None = None) -> int:
        """One pass; returns how many checks it queued."""
        with self.database.session() as session:
            queued = due_checks(session, time.time() if now is None else now)
            for check in queued:
                with log_context(health_check_id=check.id, schedule_id=check.schedule_id):
                    log.info("scheduled health check %s of version %s queued", check.id, check.version)
            return len(queued)
