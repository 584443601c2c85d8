"""Health checks: an evaluation of one version, queued for workers (`service.worker`) like jobs."""

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import ApiError, not_found
from service.models import HealthCheck, Tenant, Version
from service.schemas.health_checks import HealthCheckCreate
from service.services.lineages import get_lineage
from service.services.paging import page
from trainers.contracts.statuses import HealthCheckStatus


def create_health_check(session: Session, tenant: Tenant, request: HealthCheckCreate) -> HealthCheck:
    """Queue a check of `request.version`, or of the promoted version when none is given."""
    lineage = get_lineage(session, tenant, request.lineage, param="lineage")
    number = request.version if request.version is not None else lineage.promoted_version
    if number is None:
        raise ApiError(
            409,
            f"Lineage '{lineage.name}' has no promoted version to check yet; give a version.",
            param="version",
            code="no_version",
        )
    version = session.scalar(
        select(Version).where(Version.lineage_pk == lineage.pk, Version.number == number)
    )
    if version is None:
        raise not_found("version", f"{lineage.name}@{number}", "version")
    check = HealthCheck(
        id=f"hc-{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        lineage_pk=lineage.pk,
        version=number,
        suites=list(dict.fromkeys(request.suites)),
        status=HealthCheckStatus.QUEUED,
    )
    session.add(check)
    session.flush()
    return check


def list_health_checks(
    session: Session, tenant: Tenant, lineage_name: str | None, after: str | None, limit: int
) -> tuple[list[HealthCheck], bool]:
    """The tenant's health checks, or one lineage's, newest first."""
    scope = HealthCheck.tenant_pk == tenant.pk
    if lineage_name is not None:
        scope &= HealthCheck.lineage_pk == get_lineage(session, tenant, lineage_name, param="lineage").pk
    return page(session, HealthCheck, scope, after, limit)


def get_health_check(session: Session, tenant: Tenant, check_id: str) -> HealthCheck:
    """The tenant's health check with this id, or a 404."""
    check = session.scalar(
        select(HealthCheck).where(HealthCheck.id == check_id, HealthCheck.tenant_pk == tenant.pk)
    )
    if check is None:
        raise not_found("health check", check_id, "health_check_id")
    return check
