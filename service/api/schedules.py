"""`/v1/health_check_schedules`: cron schedules of health checks of a lineage's promoted version."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import HealthCheckSchedule, Lineage
from service.schemas.common import ListPage
from service.schemas.health_checks import ScheduleCreate, SchedulePublic
from service.services import quotas, schedules

router = APIRouter(prefix="/health_check_schedules", tags=["health checks"])


@router.post("", response_model=SchedulePublic)
def create_schedule(
    request: ScheduleCreate, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> SchedulePublic:
    quotas.check_quota(session, settings, tenant, "max_schedules")
    return schedule_public(session, schedules.create_schedule(session, tenant, request))


@router.get("", response_model=ListPage[SchedulePublic])
def list_schedules(
    session: SessionDep,
    tenant: TenantDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListPage[SchedulePublic]:
    rows, has_more = schedules.list_schedules(session, tenant, after, limit)
    return ListPage(data=[schedule_public(session, row) for row in rows], has_more=has_more)


@router.get("/{schedule_id}", response_model=SchedulePublic)
def get_schedule(schedule_id: str, session: SessionDep, tenant: TenantDep) -> SchedulePublic:
    return schedule_public(session, schedules.get_schedule(session, tenant, schedule_id))


@router.delete("/{schedule_id}", response_model=SchedulePublic)
def delete_schedule(schedule_id: str, session: SessionDep, tenant: TenantDep) -> SchedulePublic:
    return schedule_public(session, schedules.delete_schedule(session, tenant, schedule_id))


def schedule_public(session: Session, row: HealthCheckSchedule) -> SchedulePublic:
    return SchedulePublic(
        id=row.id,
        lineage=session.get_one(Lineage, row.lineage_pk).name,
        cron=row.cron,
        suites=row.suites,
        next_run_at=int(row.next_run_at),
        last_run_at=int(row.last_run_at) if row.last_run_at is not None else None,
        created_at=row.created_at,
    )
