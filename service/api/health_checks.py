"""`/v1/health_checks`: queue an evaluation of a version, read its result, list a lineage's or tenant's."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import HealthCheck, Lineage
from service.schemas.common import ListPage
from service.schemas.health_checks import HealthCheckCreate, HealthCheckPublic
from service.services import health_checks, quotas

router = APIRouter(prefix="/health_checks", tags=["health checks"])


@router.post("", response_model=HealthCheckPublic)
def create_health_check(
    request: HealthCheckCreate, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> HealthCheckPublic:
    quotas.check_quota(session, settings, tenant, "max_active_health_checks")
    return health_check_public(session, health_checks.create_health_check(session, tenant, request))


@router.get("", response_model=ListPage[HealthCheckPublic])
def list_health_checks(
    session: SessionDep,
    tenant: TenantDep,
    lineage: Annotated[str | None, Query(description="Only this lineage's checks.")] = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListPage[HealthCheckPublic]:
    rows, has_more = health_checks.list_health_checks(session, tenant, lineage, after, limit)
    return ListPage(data=[health_check_public(session, row) for row in rows], has_more=has_more)


@router.get("/{check_id}", response_model=HealthCheckPublic)
def get_health_check(check_id: str, session: SessionDep, tenant: TenantDep) -> HealthCheckPublic:
    return health_check_public(session, health_checks.get_health_check(session, tenant, check_id))


def health_check_public(session: Session, row: HealthCheck) -> HealthCheckPublic:
    return HealthCheckPublic(
        id=row.id,
        lineage=session.get_one(Lineage, row.lineage_pk).name,
        version=row.version,
        suites=row.suites,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        result=row.result,
        report_id=row.report_id,
        schedule_id=row.schedule_id,
    )
