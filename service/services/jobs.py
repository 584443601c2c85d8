"""Fine-tuning jobs: creation, listing, cancellation, and their events and checkpoints."""

import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from eval.probes import Probes, ProbeSizes, build_probes_from_file
from service.errors import ApiError, not_found
from service.models import Checkpoint, File, Job, JobEvent, Lineage, Tenant, Version, now
from service.schemas.jobs import HyperparameterConflict, JobCreate
from service.services.files import TRAINING_PURPOSE, get_file
from service.services.lineages import get_lineage, lineage_for_job, parent_version
from service.services.model_names import ModelName, parse_model_name, version_name
from service.services.paging import page
from service.services.training_data import format_problem
from service.services.webhooks import emit, job_data
from service.settings import Settings
from trainers.contracts.integrations import Integration, missing_package
from trainers.contracts.job import Hyperparameters
from trainers.contracts.methods import objective_problem
from trainers.contracts.objectives import Objective
from trainers.contracts.statuses import JobStatus


def create_job(session: Session, settings: Settings, tenant: Tenant, request: JobCreate) -> Job:
    """Queue a job on a lineage; it runs after every earlier job of that lineage.

    A job whose `model` names a base model instead starts a lineage of it (`lineage_for_job`).
    """
    name = parse_model_name(request.model)
    if name is None:
        message = f"'{request.model}': a version is `<lineage>@<N>` or `<lineage>@<N>-<suffix>`, N from 1."
        raise ApiError(400, message, param="model")
    requested = None
    if name.number is not None:
        lineage = get_lineage(session, tenant, name.lineage, param="model")
        requested = _named_parent(session, lineage, name, request)
    else:
        lineage = lineage_for_job(session, settings, tenant, name.lineage, request.suffix)
    training_file = _training_data(session, tenant, request.training_file, "training_file")
    validation_file = None
    if request.validation_file is not None:
        validation_file = _training_data(session, tenant, request.validation_file, "validation_file")
    screen = lineage.health_config.data_screen
    junk = training_file.junk_ratio or 0.0  # None for files uploaded before the screen existed
    junky = junk > screen.threshold
    if junky and screen.action == "refuse":
        raise ApiError(
            400,
            f"Training file '{training_file.id}' is {100 * junk:.0f}% junk rows (short, "
            f"engagement bait, repetitive or low-information), above lineage '{lineage.name}'s limit of "
            f"{100 * screen.threshold:.0f}%.",
            param="training_file",
            code="junk_training_file",
        )
    integrations = _integrations(request)
    hyperparameters, objective = _objective(request, lineage, training_file, validation_file)
    _check_processes(request.processes, hyperparameters.batch_size, settings.max_job_processes)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    probes = job_probes(training_file, lineage, seed)
    _check_steps(hyperparameters, training_file.rows - len(probes.held_out_rows), settings.max_job_steps)
    job = Job(
        id=f"ftjob-{secrets.token_hex(12)}",
        tenant_pk=tenant.pk,
        lineage_pk=lineage.pk,
        training_file=training_file.id,
        validation_file=request.validation_file,
        integrations=[asdict(integration) for integration in integrations] or None,
        status=JobStatus.QUEUED,
        hyperparameters=asdict(hyperparameters),
        objective=objective.to_json(),
        seed=seed,
        suffix=request.suffix,
        metadata_=request.metadata,
        probes=probes.to_json(),
        junk_ratio=training_file.junk_ratio,
        processes=request.processes,
        requested_parent=requested,
    )
    session.add(job)
    session.flush()
    add_event(session, job, f"Validated training file: {training_file.rows} rows.")
    if validation_file is not None:
        add_event(session, job, f"Validated validation file: {validation_file.rows} rows.")
    add_event(
        session,
        job,
        f"Probes drawn: {len(probes.recall)} recall, {len(probes.recognition)} recognition, "
        f"{len(probes.held_out)} held-out rows (kept out of training).",
    )
    if junky and screen.action == "warn":
        message = (
            f"The training file is {100 * junk:.0f}% junk rows, "
            f"above the lineage's warning level of {100 * screen.threshold:.0f}%; "
            "the health gate will compare the new version with the one it replaces."
        )
        add_event(session, job, message, level="warn")
    add_event(session, job, "Job entered queue.")
    return job


def job_probes(training_file: File, lineage: Lineage, seed: int) -> Probes:
    """The probes of a job on `training_file`, sized by the lineage's evaluation config."""
    config = lineage.evaluation_config
    sizes = ProbeSizes(
        recall=config.recall_items,
        recognition=config.recognition_items,
        held_out_fraction=config.held_out_fraction,
        max_held_out=config.max_held_out,
    )
    return build_probes_from_file(Path(training_file.path), training_file.rows, seed, sizes)


def _training_data(session: Session, tenant: Tenant, file_id: str, param: str) -> File:
    """The tenant's uploaded JSONL file `file_id` (rows checked on upload), or a 4xx naming `param`."""
    file = get_file(session, tenant, file_id, param=param)
    if file.purpose != TRAINING_PURPOSE:
        raise ApiError(
            400,
            f"{param}: file '{file_id}' has purpose '{file.purpose}'; a job reads files uploaded with "
            f"purpose '{TRAINING_PURPOSE}'.",
            param=param,
            code="invalid_file",
        )
    return file


def _objective(
    request: JobCreate, lineage: Lineage, training_file: File, validation_file: File | None
) -> tuple[Hyperparameters, Objective]:
    """The job's hyperparameters and training objective (its `method`), once the lineage's method
    can train on that objective and the file holds its kind of rows; else a 400 naming the field."""
    try:
        hyperparameters, objective = request.method.resolved(request.hyperparameters)
    except HyperparameterConflict as conflict:
        raise ApiError(400, str(conflict), param=conflict.param, code="invalid_value") from conflict
    if problem := objective_problem(lineage.method.type, objective.type):
        raise ApiError(
            400,
            f"Lineage '{lineage.name}' ({lineage.method.type}) cannot train a {objective.type} job: "
            f"{problem}.",
            param="method",
            code="unsupported_method",
        )
    for file, param in ((training_file, "training_file"), (validation_file, "validation_file")):
        if file is None:
            continue
        with Path(file.path).open("rb") as lines:
            found = format_problem(lines, objective.type)
        if found is not None:
            line, problem = found
            raise ApiError(
                400,
                f"File '{file.id}' does not suit a {objective.type} job: line {line}: {problem}.",
                param=param,
                code="invalid_file_format",
            )
    return hyperparameters, objective


def _integrations(request: JobCreate) -> list[Integration]:
    """The job's experiment trackers; a 400 naming the package to install when one is missing."""
    for index, integration in enumerate(request.integrations):
        if package := missing_package(integration.type):
            raise ApiError(
                400,
                f"integrations[{index}]: a {integration.type} integration needs the '{package}' package, "
                "which is not installed where this service runs; install it (pip install "
                f"{package}) or leave the integration out.",
                param=f"integrations[{index}].type",
                code="integration_unavailable",
            )
    return [integration.resolved() for integration in request.integrations]


def _check_processes(processes: int | None, batch_size: int, limit: int) -> None:
    if processes is None:
        return
    if processes > limit:
        raise ApiError(
            400,
            f"processes ({processes}) is over this service's limit of {limit} trainer processes per job "
            "(NEUROPLAST_MAX_JOB_PROCESSES).",
            param="processes",
            code="invalid_value",
        )
    if processes > batch_size:
        raise ApiError(
            400,
            f"processes ({processes}) may not exceed hyperparameters.batch_size "
            f"({batch_size}): each process takes a share of every batch.",
            param="processes",
            code="invalid_value",
        )


def _check_steps(hyperparameters: Hyperparameters, trained_rows: int, limit: int) -> None:
    """Refuse a job of more optimizer steps than `limit`, naming the hyperparameter that sets them."""
    steps = hyperparameters.total_steps(trained_rows)
    if steps <= limit:
        return
    param = "hyperparameters.max_steps" if hyperparameters.max_steps else "hyperparameters.n_epochs"
    raise ApiError(
        400,
        f"{param}: the job would run {steps} optimizer steps, over this service's limit of {limit} "
        "(NEUROPLAST_MAX_JOB_STEPS); split the data over several jobs or train fewer epochs.",
        param=param,
        code="invalid_value",
    )


def _named_parent(session: Session, lineage: Lineage, name: ModelName, request: JobCreate) -> int:
    """The version a job's `model` names (`<lineage>@<N>[-<suffix>]`); a 404 when its suffix is not
    that version's."""
    assert name.number is not None
    number = parent_version(session, lineage, name.number, request.force).number
    actual = version_name(lineage.name, number, version_suffix(session, lineage, number))
    if name.suffix is not None and request.model != actual:
        message = f"No model named '{request.model}': version {number} of '{lineage.name}' is '{actual}'."
        raise ApiError(404, message, param="model", code="not_found")
    return number


def version_suffix(session: Session, lineage: Lineage, number: int) -> str | None:
    """The suffix of version `number` of `lineage`: its job's `suffix`."""
    query = (
        select(Job.suffix)
        .join(Version, Version.job_id == Job.id)
        .where(Version.lineage_pk == lineage.pk, Version.number == number)
    )
    return session.scalar(query)


def get_job(session: Session, tenant: Tenant, job_id: str) -> Job:
    """The tenant's job with this id, or a 404."""
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_pk == tenant.pk))
    if job is None:
        raise not_found("fine-tuning job", job_id, "fine_tuning_job_id")
    return job


def list_jobs(session: Session, tenant: Tenant, after: str | None, limit: int) -> tuple[list[Job], bool]:
    """The tenant's jobs, newest first."""
    return page(session, Job, Job.tenant_pk == tenant.pk, after, limit)


def cancel_job(session: Session, tenant: Tenant, job_id: str) -> Job:
    """Cancel a queued or running job; its worker sees the lease gone and stops the trainer."""
    job = get_job(session, tenant, job_id)
    if job.status not in JobStatus.active():
        raise ApiError(
            409,
            f"Job '{job_id}' has already finished with status '{job.status}'.",
            code="job_finished",
        )
    job.status, job.finished_at, job.lease_token = JobStatus.CANCELLED, now(), None
    add_event(session, job, "Job cancelled.")
    emit(session, job.tenant_pk, "fine_tuning.job.cancelled", job_data(session, job))
    return job


def pause_job(session: Session, tenant: Tenant, job_id: str) -> Job:
    """Pause a queued or running job: no worker claims it until it is resumed.

    A running job's worker sees its lease gone at its next heartbeat and stops the trainer; the
    staging folder with the job's checkpoints stays, and the attempt does not count (as on shutdown).
    The row changes only if it is still queued or running, so a job that finishes meanwhile stays
    finished.
    """
    job = get_job(session, tenant, job_id)
    _refuse_unless(job, PAUSABLE, "pause")
    paused = session.execute(
        update(Job)
        .where(Job.pk == job.pk, Job.status.in_(PAUSABLE))
        .values(
            status=JobStatus.PAUSED,
            lease_token=None,
            lease_expires_at=None,
            attempts=case((Job.status == JobStatus.RUNNING, Job.attempts - 1), else_=Job.attempts),
        )
    )
    session.refresh(job)
    if paused.rowcount != 1:  # type: ignore[attr-defined]
        _refuse_unless(job, (), "pause")
    add_event(session, job, PAUSED_EVENT)
    return job


def resume_job(session: Session, tenant: Tenant, job_id: str) -> Job:
    """Queue a paused job again; it resumes from its newest checkpoint on whichever worker claims it.

    Time spent paused does not count towards NEUROPLAST_JOB_TIMEOUT_SECONDS: the job's start moves
    forward by it.
    """
    job = get_job(session, tenant, job_id)
    _refuse_unless(job, (JobStatus.PAUSED,), "resume")
    paused_at = session.scalar(
        select(JobEvent.created_at)
        .where(JobEvent.job_pk == job.pk, JobEvent.message == PAUSED_EVENT)
        .order_by(JobEvent.pk.desc())
        .limit(1)
    )
    paused_for = max(0, now() - (paused_at or now()))
    resumed = session.execute(
        update(Job)
        .where(Job.pk == job.pk, Job.status == JobStatus.PAUSED)
        .values(status=JobStatus.QUEUED, started_at=Job.started_at + paused_for)
    )
    session.refresh(job)
    if resumed.rowcount != 1:  # type: ignore[attr-defined]
        _refuse_unless(job, (), "resume")
    add_event(session, job, RESUMED_EVENT)
    return job


PAUSABLE = (JobStatus.QUEUED, JobStatus.RUNNING)  # evaluating: the version is trained, and nearly done
PAUSED_EVENT = "Job paused."
RESUMED_EVENT = "Job resumed."  # the claim that follows it says it resumed after a pause


def _refuse_unless(job: Job, statuses: tuple[JobStatus, ...], verb: str) -> None:
    """A 409 naming the job's status unless it is one of `statuses`: `job_finished` for a finished job."""
    if job.status in statuses:
        return
    if job.status in JobStatus.terminal():
        raise ApiError(
            409, f"Job '{job.id}' has already finished with status '{job.status}'.", code="job_finished"
        )
    which = "a queued or running" if verb == "pause" else "a paused"
    raise ApiError(
        409, f"Job '{job.id}' is {job.status}; only {which} job can be {verb}d.", code=f"cannot_{verb}"
    )


def list_events(session: Session, job: Job, after: str | None, limit: int) -> tuple[list[JobEvent], bool]:
    """A job's events, newest first."""
    return page(session, JobEvent, JobEvent.job_pk == job.pk, after, limit)


def list_checkpoints(
    session: Session, job: Job, after: str | None, limit: int
) -> tuple[list[Checkpoint], bool]:
    """A job's checkpoints, newest first."""
    return page(session, Checkpoint, Checkpoint.job_pk == job.pk, after, limit)


def add_event(
    session: Session,
    job: Job,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event to a job's log."""
    session.add(
        JobEvent(
            id=f"ftevent-{secrets.token_hex(12)}",
            job_pk=job.pk,
            level=level,
            message=message,
            type=type,
            data=data,
        )
    )
