"""Following a trainer or evaluator process under its lease: the process's protocol lines are handed
on as they come, the lease is renewed every `heartbeat_seconds` while it runs, and JobTimedOut is
raised once the job or health check has run `job_timeout_seconds` since its first start, over all
attempts. The worker's training (`service.worker.worker`) and its evaluator
(`service.worker.evaluator`) both follow their processes here.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path

from service.db import Database
from service.models import HealthCheck, Job
from service.settings import Settings
from service.worker.lease import JobQueue, Lease, LeaseLost
from service.worker.trainer_process import TrainerProcess
from trainers.contracts.lines import Completed, Line

__all__ = ["Follower", "JobTimedOut"]


class JobTimedOut(Exception):
    """The job trained past `job_timeout_seconds`: it fails, whichever tenant's it is."""


class Follower:
    """Follows the child processes of one worker's leases."""

    def __init__(self, settings: Settings, database: Database, queue: JobQueue) -> None:
        self.settings = settings
        self.database = database
        self.queue = queue

    def log_path(self, lease: Lease) -> Path:
        """Where the processes of `lease` write their stderr."""
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.logs_dir / f"{lease.id}.log"

    def follow(
        self, lease: Lease, process: TrainerProcess, stop: threading.Event, on_line: Callable[[Line], None]
    ) -> bool:
        """Hand the process's lines to `on_line` and renew the lease until it exits; True if it completed.

        Raises JobTimedOut once the wall clock passes the lease's deadline (`_deadline`).
        """
        deadline = self._deadline(lease)
        completed, renewed_at = False, time.monotonic()
        for line in process.lines(tick=min(1.0, self.settings.heartbeat_seconds)):
            if stop.is_set():
                return False
            if time.time() > deadline:
                noun = "job" if lease.work is Job else "health check"
                raise JobTimedOut(
                    f"The {noun} ran for longer than this service's limit of "
                    f"{self.settings.job_timeout_seconds:g} s (NEUROPLAST_JOB_TIMEOUT_SECONDS)."
                )
            if line is not None:
                completed |= isinstance(line, Completed)
                on_line(line)
            if time.monotonic() - renewed_at >= self.settings.heartbeat_seconds:
                if not self.queue.renew(lease):
                    raise LeaseLost(
                        lease.id
                    )  # cancelled or taken over: the caller's finally stops the process
                renewed_at = time.monotonic()
        return completed

    def _deadline(self, lease: Lease) -> float:
        """When the job or check must have finished: its first start plus the timeout, over all attempts."""
        with self.database.session() as session:
            work: Job | HealthCheck = session.get_one(lease.work, lease.pk)  # type: ignore[assignment]
            started = work.started_at or time.time()
        return started + self.settings.job_timeout_seconds
