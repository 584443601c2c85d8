"""A job's workspace: where its version is built (a local staging folder) and published (its
location in the artifact store), and the spec its trainer reads (`trainers.contracts.job.JobSpec`),
built from the job's rows: its files, its parent version, its probes and the lineage's continual
evaluation.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import File, Job, Lineage, Tenant, Version
from service.settings import Settings
from service.storage.store import ArtifactStore
from service.worker.evaluation import PROBES_FILE, earlier_probes
from trainers.contracts.integrations import Integration
from trainers.contracts.job import ContinualEvalSpec, Hyperparameters, JobSpec
from trainers.contracts.objectives import Objective

__all__ = ["Workspace", "job_workspace"]


@dataclass(frozen=True)
class Workspace:
    """Where one job's version is built (`staging`, a local folder) and published (`final`, its
    location in the artifact store)."""

    staging: Path
    final: str
    spec: JobSpec
    probes: dict[str, Any] | None


def job_workspace(session: Session, job: Job, store: ArtifactStore, settings: Settings) -> Workspace:
    """The workspace of `job`, its spec naming the files, parent and probes of the rows in `session`."""
    lineage = session.get_one(Lineage, job.lineage_pk)
    tenant = session.get_one(Tenant, job.tenant_pk)
    training_file = session.scalars(select(File).where(File.id == job.training_file)).one()
    validation_file = None
    if job.validation_file is not None:
        validation_file = session.scalars(select(File).where(File.id == job.validation_file)).one()
    number = job.version_number or 0
    final = store.version_location(tenant.name, lineage.name, number)
    staging = store.staging_dir(tenant.name, lineage.name, number)
    parent = None
    if job.parent_version:  # where it was published, should the store have moved since
        location = session.scalars(
            select(Version.path).where(Version.lineage_pk == lineage.pk, Version.number == job.parent_version)
        ).one()
        parent = store.local_version(location)
    evaluation = lineage.evaluation_config
    continual_eval = None
    if job.probes is not None and evaluation.continual_eval_every > 0:
        continual_eval = ContinualEvalSpec(
            every=evaluation.continual_eval_every,
            items=evaluation.continual_eval_items,
            earlier=earlier_probes(session, lineage, number, store),
            current=str(staging / PROBES_FILE),
        )
    spec = JobSpec(
        job_id=job.id,
        tenant=tenant.name,
        lineage=lineage.name,
        version=number,
        parent_version=job.parent_version,
        base_model=lineage.base_model,
        method=lineage.method,
        training_file=Path(training_file.path),
        training_file_sha256=training_file.sha256,
        validation_file=Path(validation_file.path) if validation_file else None,
        validation_file_sha256=validation_file.sha256 if validation_file else None,
        integrations=[Integration.from_json(item) for item in job.integrations or []],
        parent_dir=parent,
        output_dir=staging,
        hyperparameters=Hyperparameters(**job.hyperparameters),
        seed=job.seed,
        checkpoint_every=settings.checkpoint_every,
        cache_dir=settings.cache_dir,
        held_out_rows=job.probes["held_out_rows"] if job.probes else [],
        continual_eval=continual_eval,
        precision=settings.trainer_precision,
        objective=Objective.from_json(job.objective),
    )
    return Workspace(staging=staging, final=final, spec=spec, probes=job.probes)
