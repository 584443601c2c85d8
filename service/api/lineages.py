"""`/v1/lineages`: create, list and get lineages, and list their versions."""

import asyncio
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from service.db import Database
from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import Lineage, Tenant, Version
from service.schemas.common import ListPage
from service.schemas.lineages import (
    LineageCreate,
    LineagePublic,
    PromoteRequest,
    RetentionPublic,
    ServingPublic,
    VersionPublic,
)
from service.services import lineages, quotas, retention

router = APIRouter(prefix="/lineages", tags=["lineages"])


@router.post("", response_model=LineagePublic)
def create_lineage(
    request: LineageCreate, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> LineagePublic:
    quotas.check_quota(session, settings, tenant, "max_lineages")
    return lineage_public(session, lineages.create_lineage(session, settings, tenant, request))


@router.get("", response_model=ListPage[LineagePublic])
def list_lineages(
    session: SessionDep,
    tenant: TenantDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListPage[LineagePublic]:
    rows, has_more = lineages.list_lineages(session, tenant, after, limit)
    return ListPage(data=[lineage_public(session, row) for row in rows], has_more=has_more)


@router.get("/{name}", response_model=LineagePublic)
def get_lineage(name: str, session: SessionDep, tenant: TenantDep) -> LineagePublic:
    return lineage_public(session, lineages.get_lineage(session, tenant, name))


@router.get("/{name}/versions", response_model=ListPage[VersionPublic])
def list_versions(name: str, session: SessionDep, tenant: TenantDep) -> ListPage[VersionPublic]:
    lineage = lineages.get_lineage(session, tenant, name)
    return ListPage(data=[version_public(lineage, row) for row in lineages.list_versions(session, lineage)])


@router.get("/{name}/retention", response_model=RetentionPublic)
def get_retention(name: str, session: SessionDep, tenant: TenantDep) -> RetentionPublic:
    """R[version][job] for recall, recognition and held-out loss, with the continual-learning metrics."""
    return retention.retention(session, lineages.get_lineage(session, tenant, name))


@router.post("/{name}/promote", response_model=ServingPublic)
async def promote(name: str, body: PromoteRequest, request: Request, tenant: TenantDep) -> ServingPublic:
    return await _swap(
        request,
        tenant,
        name,
        lambda session, row: lineages.promote(session, row, body.version, force=body.force),
    )


@router.post("/{name}/rollback", response_model=ServingPublic)
async def rollback(name: str, request: Request, tenant: TenantDep) -> ServingPublic:
    return await _swap(request, tenant, name, lineages.rollback)


async def _swap(
    request: Request, tenant: Tenant, name: str, change: Callable[[Session, Lineage], Version]
) -> ServingPublic:
    # The database change commits first; the swap (network work) runs with no transaction open.
    database: Database = request.app.state.database

    def apply() -> int:
        with database.session() as session:
            return change(session, lineages.get_lineage(session, tenant, name)).number

    version = await asyncio.to_thread(apply)
    started = time.perf_counter()
    served = None
    if request.app.state.serving is not None:
        served = await request.app.state.serving.sync_lineage(tenant.name, name)
    return ServingPublic(
        lineage=name,
        promoted_version=version,
        served_version=served.version if served else None,
        swap_seconds=round(time.perf_counter() - started, 4),
    )


def lineage_public(session: Session, row: Lineage) -> LineagePublic:
    return LineagePublic(
        id=row.id,
        name=row.name,
        base_model=row.base_model,
        method=row.method.to_json(),
        evaluation=row.evaluation_config,
        health=row.health_config,
        created_at=row.created_at,
        head_version=(parent := lineages.next_parent(session, row)).version,
        head_reason=parent.reason,
        promoted_version=row.promoted_version,
        latest_version=lineages.latest_version(session, row),
    )


def version_public(lineage: Lineage, row: Version) -> VersionPublic:
    return VersionPublic(
        lineage=lineage.name,
        version=row.number,
        parent_version=row.parent_number,
        status=row.status,
        job_id=row.job_id,
        created_at=row.created_at,
        metrics=row.metrics,
        report_id=row.report_id,
    )
