"""Claims of queued work with leases. Every worker write happens inside `guarded`, which proves the lease.

One queue, two kinds of work: fine-tuning jobs (strictly in order per lineage) and health checks
(independent of jobs). Both tables carry the same lease columns (`Leased`); both take turns
between tenants (`_next`).
"""

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.db import Database
from service.models import Checkpoint, HealthCheck, Job, JobEvent, Leased, Lineage, Version
from service.services.jobs import RESUMED_EVENT, add_event
from service.services.lineages import next_parent
from service.services.webhooks import emit, job_data
from service.settings import Settings
from trainers.contracts.statuses import JobStatus


class LeaseLost(Exception):
    """The work was cancelled, or its lease expired and another worker may have claimed it."""


@dataclass(frozen=True)
class Lease:
    """A worker's right to run one row of `work` (a job or a health check), proven by `token`."""

    work: type[Job] | type[HealthCheck]
    pk: int
    id: str
    token: str
    attempt: int


class JobQueue:
    """Claims, renews and guards leases on job rows."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def claim(self, owner: str) -> Lease | None:
        """Lease the next runnable job (first of its lineage), else the next runnable health check.

        Runnable: queued, or with an expired lease (its worker died). On Postgres the candidate row
        (and, for a job, its lineage's row) is locked with `FOR NO KEY UPDATE SKIP LOCKED`, so racing
        workers pass over each other's rows instead of waiting; on SQLite, which has no row locks, the
        compare-and-swap in `_take` decides the race.
        """
        now = time.time()
        with self.database.session() as session:
            locking = session.get_bind().dialect.name == "postgresql"
            for work in (Job, HealthCheck):
                passed: list[int] = []
                while row := session.scalars(_next(work, locking), {"now": now, "passed": passed}).first():
                    passed.append(row.pk)
                    if row.attempts >= self.settings.max_attempts:
                        _give_up(session, row)
                        continue
                    if locking and isinstance(row, Job) and not _still_first(session, row):
                        continue
                    lease = self._take(session, row, owner)
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
        """Give running work back on shutdown: re-claimable at once, and the attempt does not count."""
        work = lease.work
        with self.database.session() as session:
            session.execute(
                update(work)
                .where(work.pk == lease.pk, work.lease_token == lease.token)
                .values(lease_expires_at=0.0, attempts=work.attempts - 1)
            )

    @contextmanager
    def guarded(self, lease: Lease) -> Iterator[tuple[Session, Any]]:
        """A transaction that holds the leased row and renews the lease, or raises LeaseLost.

        The renewing UPDATE locks the row until commit, so no other claim or cancel can slip
        between the check and the writes made inside the block.
        """
        work = lease.work
        with self.database.session() as session:
            renewed = session.execute(
                update(work)
                .where(
                    work.pk == lease.pk,
                    work.lease_token == lease.token,
                    work.status.in_(JobStatus.working()),
                )
                .values(lease_expires_at=time.time() + self.settings.lease_seconds)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost(lease.id)
            yield session, session.get_one(work, lease.pk)

    def _take(self, session: Session, row: Job | HealthCheck, owner: str) -> Lease | None:
        work = type(row)
        token = secrets.token_hex(16)
        # Compare-and-swap on `attempts`: of two workers racing for this row, one wins.
        taken = session.execute(
            update(work)
            .where(
                work.pk == row.pk,
                work.attempts == row.attempts,
                work.status.in_((JobStatus.QUEUED, *JobStatus.working())),
            )
            .values(
                status=JobStatus.RUNNING,
                owner=owner,
                lease_token=token,
                lease_expires_at=time.time() + self.settings.lease_seconds,
                attempts=work.attempts + 1,
                started_at=func.coalesce(work.started_at, int(time.time())),
            )
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        claimed_before = isinstance(row, Job) and row.version_number is not None  # fixed at the first claim
        session.refresh(row)
        if isinstance(row, Job):
            if not claimed_before:
                lineage = session.get_one(Lineage, row.lineage_pk)
                newest = select(func.max(Version.number)).where(Version.lineage_pk == lineage.pk)
                row.version_number = (session.scalar(newest) or 0) + 1
                parent = next_parent(session, lineage, row.requested_parent)
                row.parent_version, row.parent_reason = parent.version, parent.reason
                level = "warn" if parent.passes_over else "info"
                add_event(session, row, parent.reason, level=level, data={"parent_version": parent.version})
            add_event(session, row, _claimed_event(session, row, owner, claimed_before))
        return Lease(work, row.pk, row.id, token, row.attempts)


def _claimed_event(session: Session, job: Job, owner: str, claimed_before: bool) -> str:
    """What a job's claim by `owner` says: started, resumed after a pause (from which checkpoint), or
    resumed after its worker was lost or handed it back."""
    if not claimed_before:
        return f"Started on worker {owner}."
    newest = select(JobEvent.message).where(JobEvent.job_pk == job.pk).order_by(JobEvent.pk.desc()).limit(1)
    if session.scalar(newest) != RESUMED_EVENT:
        return f"Resumed (attempt {job.attempts}) on worker {owner}."
    step = session.scalar(select(func.max(Checkpoint.step_number)).where(Checkpoint.job_pk == job.pk))
    # The trainer goes on from the newest complete checkpoint on disk, which may be newer than
    # the newest the worker recorded before the pause stopped it.
    where = (
        f"its newest recorded checkpoint is at step {step}" if step else "it had no recorded checkpoint yet"
    )
    return f"Resumed after a pause on worker {owner}; {where}."


@cache  # built once: idle workers run it every poll
def _next(work: type[Leased], locking: bool) -> Select[Any]:
    """The next runnable row of `work` not yet looked at in this claim (parameters `now`, `passed`).

    Fair across tenants: first the tenant with the fewest rows running, then the one whose last
    start is oldest, then the oldest row; so a tenant with many queued jobs takes turns with one
    that has a single job instead of going first with all of them.
    """
    query = (
        select(work)
        .where(
            work.status.in_((JobStatus.QUEUED, *JobStatus.working())),
            or_(work.lease_expires_at.is_(None), work.lease_expires_at < bindparam("now")),
            work.pk.not_in(bindparam("passed", expanding=True)),  # type: ignore[attr-defined]
        )
        .order_by(*_tenant_turns(work), work.pk)  # type: ignore[attr-defined]
        .limit(1)
    )
    if work is Job:
        query = query.join(Lineage, Lineage.pk == Job.lineage_pk).where(~_waits_for_another(Job))
    if not locking:
        return query
    # NO KEY UPDATE, not UPDATE: inserting a job takes a KEY SHARE lock on its lineage (the foreign
    # key), which UPDATE would conflict with. Locking the lineage serializes claims within it.
    locked = [work, Lineage] if work is Job else [work]
    return query.with_for_update(skip_locked=True, key_share=True, of=locked)


def _tenant_turns(work: type[Leased]) -> tuple[Any, Any]:
    """Sort keys of a row's tenant: its rows running now, and when it last started one (0: never)."""
    other = aliased(work)
    same_tenant = other.tenant_pk == work.tenant_pk  # type: ignore[attr-defined]
    running = select(func.count()).where(same_tenant, other.status.in_(JobStatus.working()))
    last_start = select(func.coalesce(func.max(other.started_at), 0)).where(same_tenant)
    return running.scalar_subquery(), last_start.scalar_subquery()


def _waits_for_another(job: type[Job]) -> Any:
    """The job must wait: its lineage has an earlier unfinished job, or another job running.

    The second clause matters on Postgres, where a job inserted concurrently may become visible
    after a later one (a higher pk) of its lineage was already claimed.
    """
    other = aliased(Job)
    return exists().where(
        other.lineage_pk == job.lineage_pk,
        other.pk != job.pk,
        or_(
            and_(other.pk < job.pk, other.status.in_(JobStatus.active())),
            other.status.in_(JobStatus.working()),
        ),
    )


def _still_first(session: Session, job: Job) -> bool:
    """Re-check the lineage order in a new statement, now that the lineage row is ours.

    The locking SELECT judged its NOT EXISTS by the snapshot taken when it started, which may
    predate another worker's committed claim in this lineage; under READ COMMITTED this statement
    takes a fresh snapshot, and the lineage lock keeps the answer true until we commit.
    """
    return not session.scalar(_STILL_FIRST, {"pk": job.pk})


_STILL_FIRST = select(_waits_for_another(Job)).where(Job.pk == bindparam("pk"))


def _give_up(session: Session, row: Job | HealthCheck) -> None:
    noun = "job" if isinstance(row, Job) else "health check"
    message = f"The {noun} lost its worker {row.attempts} times; giving up."
    row.status, row.finished_at, row.lease_token = JobStatus.FAILED, int(time.time()), None
    row.error = {"code": "worker_lost", "message": message, "param": None}
    if isinstance(row, Job):
        add_event(session, row, message, level="error")
        emit(session, row.tenant_pk, "fine_tuning.job.failed", job_data(session, row))
