"""Job claims with leases. Every worker write happens inside `guarded`, which proves the lease."""

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.db import Database
from service.models import Job, Lineage, Version
from service.services.files import ACTIVE_STATUSES
from service.services.jobs import add_event
from service.settings import Settings


class LeaseLost(Exception):
    """The job was cancelled, or its lease expired and another worker may have claimed it."""


@dataclass(frozen=True)
class Lease:
    """A worker's right to run one job, proven by `token` until it expires."""

    job_pk: int
    job_id: str
    token: str
    attempt: int


class JobQueue:
    """Claims, renews and guards leases on job rows."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def claim(self, owner: str) -> Lease | None:
        """Lease the oldest runnable job: queued (or with an expired lease) and first of its lineage."""
        with self.database.session() as session:
            for job in session.scalars(_runnable_jobs(time.time())):
                if job.attempts >= self.settings.max_attempts:
                    _give_up(session, job)
                    continue
                lease = self._take(session, job, owner)
                if lease is not None:
                    return lease
        return None

    def renew(self, lease: Lease) -> bool:
        """Extend the lease (the heartbeat); False once it is lost."""
        try:
            with self.guarded(lease):
                return True
        except LeaseLost:
            return False

    def release(self, lease: Lease) -> None:
        """Give a running job back on shutdown: re-claimable at once, and the attempt does not count."""
        with self.database.session() as session:
            session.execute(
                update(Job)
                .where(Job.pk == lease.job_pk, Job.lease_token == lease.token)
                .values(lease_expires_at=0.0, attempts=Job.attempts - 1)
            )

    @contextmanager
    def guarded(self, lease: Lease) -> Iterator[tuple[Session, Job]]:
        """A transaction that holds the job row and renews the lease, or raises LeaseLost.

        The renewing UPDATE locks the row until commit, so no other claim or cancel can slip
        between the check and the writes made inside the block.
        """
        with self.database.session() as session:
            renewed = session.execute(
                update(Job)
                .where(Job.pk == lease.job_pk, Job.lease_token == lease.token, Job.status == "running")
                .values(lease_expires_at=time.time() + self.settings.lease_seconds)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(lease.job_id)
            yield session, session.get_one(Job, lease.job_pk)

    def _take(self, session: Session, job: Job, owner: str) -> Lease | None:
        token = secrets.token_hex(16)
        # Compare-and-swap on `attempts`: of two workers racing for this row, one wins.
        taken = session.execute(
            update(Job)
            .where(
                Job.pk == job.pk,
                Job.attempts == job.attempts,
                Job.status.in_(("queued", "running")),
            )
            .values(
                status="running",
                owner=owner,
                lease_token=token,
                lease_expires_at=time.time() + self.settings.lease_seconds,
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, int(time.time())),
            )
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        session.refresh(job)
        if job.version_number is None:
            lineage = session.get_one(Lineage, job.lineage_pk)
            newest = select(func.max(Version.number)).where(Version.lineage_pk == lineage.pk)
            job.version_number = (session.scalar(newest) or 0) + 1
            job.parent_version = lineage.promoted_version
        verb = "Started" if job.attempts == 1 else f"Resumed (attempt {job.attempts})"
        add_event(session, job, f"{verb} on worker {owner}.")
        return Lease(job.pk, job.id, token, job.attempts)


def _runnable_jobs(now: float):  # type: ignore[no-untyped-def]
    earlier = aliased(Job)
    blocked = exists().where(
        earlier.lineage_pk == Job.lineage_pk,
        earlier.pk < Job.pk,
        earlier.status.in_(ACTIVE_STATUSES),
    )
    return (
        select(Job)
        .where(
            Job.status.in_(("queued", "running")),
            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now),
            ~blocked,
        )
        .order_by(Job.pk)
        .limit(8)
    )


def _give_up(session: Session, job: Job) -> None:
    message = f"The job lost its worker {job.attempts} times; giving up."
    job.status, job.finished_at, job.lease_token = "failed", int(time.time()), None
    job.error = {"code": "worker_lost", "message": message, "param": None}
    add_event(session, job, message, level="error")
