"""Health-check schedules: cron expressions whose due runs queue health checks, each exactly once.

A schedule keeps `next_run_at`. The scheduler (`due_checks`, called by the control plane every
few seconds) claims a due run with a compare-and-swap that moves `next_run_at` to the next cron
time after now, and queues the check in the same transaction: of two control planes racing, or of
one restarted after the run fell due, exactly one queues it. Runs missed while no control plane
was up are not replayed: the next one after now is scheduled instead; nor is a run that falls due
while the schedule's previous check has not finished.
"""

import secrets
import time
from datetime import UTC, datetime

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import ApiError, not_found
from service.models import HealthCheck, HealthCheckSchedule, Lineage, Tenant
from service.schemas.health_checks import ScheduleCreate
from service.services.lineages import get_lineage
from service.services.paging import page
from trainers.contracts.statuses import HealthCheckStatus

__all__ = ["create_schedule", "delete_schedule", "due_checks", "get_schedule", "list_schedules", "next_run"]


def create_schedule(session: Session, tenant: Tenant, request: ScheduleCreate) -> HealthCheckSchedule:
    """Schedule checks of a lineage's promoted version on `request.cron` (UTC)."""
    lineage = get_lineage(session, tenant, request.lineage, param="lineage")
    if not croniter.is_valid(request.cron) or len(request.cron.split()) != 5:
        raise ApiError(
            400,
            f"'{request.cron}' is not a five-field cron expression (minute hour day month weekday).",
            param="cron",
            code="invalid_cron",
        )
    schedule = HealthCheckSchedule(
        id=f"hcs-{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        lineage_pk=lineage.pk,
        cron=request.cron,
        suites=list(dict.fromkeys(request.suites)),
        next_run_at=next_run(request.cron, time.time()),
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, tenant: Tenant, schedule_id: str) -> HealthCheckSchedule:
    """The tenant's schedule with this id, or a 404."""
    schedule = session.scalar(
        select(HealthCheckSchedule).where(
            HealthCheckSchedule.id == schedule_id, HealthCheckSchedule.tenant_pk == tenant.pk
        )
    )
    if schedule is None:
        raise not_found("health check schedule", schedule_id, "schedule_id")
    return schedule


def list_schedules(
    session: Session, tenant: Tenant, after: str | None, limit: int
) -> tuple[list[HealthCheckSchedule], bool]:
    """The tenant's schedules, newest first."""
    return page(session, HealthCheckSchedule, HealthCheckSchedule.tenant_pk == tenant.pk, after, limit)


def delete_schedule(session: Session, tenant: Tenant, schedule_id: str) -> HealthCheckSchedule:
    """Stop a schedule; checks it already queued still run."""
    schedule = get_schedule(session, tenant, schedule_id)
    session.delete(schedule)
    return schedule


def due_checks(session: Session, now: float) -> list[HealthCheck]:
    """Queue one health check per schedule that fell due, claiming each due run exactly once."""
    queued = []
    due = session.scalars(select(HealthCheckSchedule).where(HealthCheckSchedule.next_run_at <= now))
    for schedule in list(due):
        claimed = session.execute(
            update(HealthCheckSchedule)
            .where(
                HealthCheckSchedule.pk == schedule.pk, HealthCheckSchedule.next_run_at == schedule.next_run_at
            )
            .values(next_run_at=next_run(schedule.cron, now), last_run_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another control plane queued this run
        lineage = session.get_one(Lineage, schedule.lineage_pk)
        if lineage.promoted_version is None:
            continue  # nothing served yet: nothing to check this time
        if _previous_unfinished(session, schedule):
            continue  # checks slower than the schedule would pile up without end: skip this run
        check = HealthCheck(
            id=f"hc-{secrets.token_hex(12)}",
            tenant_pk=schedule.tenant_pk,
            lineage_pk=lineage.pk,
            version=lineage.promoted_version,
            suites=schedule.suites,
            status=HealthCheckStatus.QUEUED,
            schedule_id=schedule.id,
        )
        session.add(check)
        queued.append(check)
    return queued


def _previous_unfinished(session: Session, schedule: HealthCheckSchedule) -> bool:
    unfinished = select(HealthCheck.pk).where(
        HealthCheck.schedule_id == schedule.id, HealthCheck.status.in_(HealthCheckStatus.active())
    )
    return session.scalar(unfinished.limit(1)) is not None


def next_run(cron: str, after: float) -> float:
    """Unix seconds of the first time `cron` (UTC) matches strictly after `after`."""
    return float(croniter(cron, datetime.fromtimestamp(after, UTC)).get_next(float))
