"""`/v1/fine_tuning/jobs`: create, list, get, cancel, pause and resume jobs; their events and checkpoints."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import Checkpoint, Job, JobEvent, Lineage, Tenant
from service.schemas.common import ListPage
from service.schemas.jobs import (
    CheckpointPublic,
    EventPublic,
    JobCreate,
    JobPublic,
    integration_public,
    job_method_public,
)
from service.services import jobs, quotas
from service.services.model_names import version_name
from trainers.contracts.objectives import Objective
from trainers.contracts.statuses import JobStatus

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning"])
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", response_model=JobPublic)
def create_job(
    request: JobCreate, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> JobPublic:
    quotas.check_quota(session, settings, tenant, "max_active_jobs")
    return job_public(session, tenant, jobs.create_job(session, settings, tenant, request))


@router.get("", response_model=ListPage[JobPublic])
def list_jobs(
    session: SessionDep, tenant: TenantDep, after: str | None = None, limit: Limit = 20
) -> ListPage[JobPublic]:
    rows, has_more = jobs.list_jobs(session, tenant, after, limit)
    return ListPage(data=[job_public(session, tenant, row) for row in rows], has_more=has_more)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, tenant, jobs.get_job(session, tenant, job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, tenant, jobs.cancel_job(session, tenant, job_id))


@router.post("/{job_id}/pause", response_model=JobPublic)
def pause_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, tenant, jobs.pause_job(session, tenant, job_id))


@router.post("/{job_id}/resume", response_model=JobPublic)
def resume_job(job_id: str, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, tenant, jobs.resume_job(session, tenant, job_id))


@router.get("/{job_id}/events", response_model=ListPage[EventPublic])
def list_events(
    job_id: str, session: SessionDep, tenant: TenantDep, after: str | None = None, limit: Limit = 20
) -> ListPage[EventPublic]:
    rows, has_more = jobs.list_events(session, jobs.get_job(session, tenant, job_id), after, limit)
    return ListPage(data=[event_public(row) for row in rows], has_more=has_more)


@router.get("/{job_id}/checkpoints", response_model=ListPage[CheckpointPublic])
def list_checkpoints(
    job_id: str, session: SessionDep, tenant: TenantDep, after: str | None = None, limit: Limit = 10
) -> ListPage[CheckpointPublic]:
    job = jobs.get_job(session, tenant, job_id)
    rows, has_more = jobs.list_checkpoints(session, job, after, limit)
    lineage = session.get_one(Lineage, job.lineage_pk)
    return ListPage(data=[checkpoint_public(job, lineage, row) for row in rows], has_more=has_more)


def job_public(session: Session, tenant: Tenant, job: Job) -> JobPublic:
    lineage = session.get_one(Lineage, job.lineage_pk)
    served_name = None
    if job.status == JobStatus.SUCCEEDED and job.version_number is not None:
        served_name = version_name(lineage.name, job.version_number, job.suffix)
    return JobPublic(
        id=job.id,
        created_at=job.created_at,
        finished_at=job.finished_at,
        model=lineage.name,
        fine_tuned_model=served_name,
        organization_id=tenant.name,
        status=job.status,  # type: ignore[arg-type]
        error=job.error,  # type: ignore[arg-type]
        hyperparameters=job.hyperparameters,
        method=job_method_public(Objective.from_json(job.objective), job.hyperparameters),
        trained_tokens=job.trained_tokens,
        parent_version=job.parent_version if job.parent_reason else job.requested_parent,
        parent_reason=job.parent_reason,
        junk_ratio=job.junk_ratio,
        processes=job.processes,
        training_file=job.training_file,
        validation_file=job.validation_file,
        result_files=job.result_files or [],
        integrations=[integration_public(item) for item in job.integrations or []],
        seed=job.seed,
        metadata=job.metadata_,
        suffix=job.suffix,
    )


def event_public(row: JobEvent) -> EventPublic:
    return EventPublic(
        id=row.id,
        created_at=row.created_at,
        level=row.level,
        message=row.message,
        type=row.type,
        data=row.data,
    )


def checkpoint_public(job: Job, lineage: Lineage, row: Checkpoint) -> CheckpointPublic:
    return CheckpointPublic(
        id=row.id,
        created_at=row.created_at,
        fine_tuned_model_checkpoint=f"{version_name(lineage.name, job.version_number or 0, job.suffix)}"
        f":step-{row.step_number}",
        fine_tuning_job_id=job.id,
        step_number=row.step_number,
        metrics=row.metrics,
    )
