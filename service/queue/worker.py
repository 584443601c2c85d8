"""A worker: lease a job row, run its trainer process, report events, publish the version.

Each step follows load -> process -> apply: nothing slow runs inside a database transaction,
and every write is guarded by the lease, so a worker that lost its job cannot publish.
"""

import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.models import Checkpoint, File, Job, Lineage, Tenant, Version, now
from service.queue.lease import JobQueue, Lease, LeaseLost
from service.queue.trainer_process import TrainerProcess
from service.services.jobs import add_event
from service.services.lineages import promote_version
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    """Where one job's version is built (`staging`) and published (`final`)."""

    staging: Path
    final: Path
    spec: dict[str, Any]


class Worker:
    """Runs jobs one at a time until stopped."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database or Database(settings.resolved_database_url)
        self.queue = JobQueue(self.database, settings)
        self.owner = settings.worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def run(self, stop: threading.Event) -> None:
        """Poll for jobs until `stop` is set."""
        log.info("worker %s polling %s", self.owner, self.database.url)
        while not stop.is_set():
            if not self.run_once(stop):
                stop.wait(self.settings.poll_seconds)

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim and run one job; False when none was runnable."""
        lease = self.queue.claim(self.owner)
        if lease is None:
            return False
        try:
            self._run(lease, stop or threading.Event())
        except LeaseLost:
            log.warning("lost the lease on %s", lease.job_id)
        return True

    def _run(self, lease: Lease, stop: threading.Event) -> None:
        workspace = self._prepare(lease)
        if _published_by(workspace.final, lease.job_id):
            self._publish(lease, workspace)  # an earlier attempt published the files, not the row
            return
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        trainer = TrainerProcess(
            workspace.staging / "spec.json", self.settings.logs_dir / f"{lease.job_id}.log"
        )
        try:
            completed = self._follow(lease, trainer, stop)
        except LeaseLost:
            trainer.stop()
            self._abandon(lease, workspace)
            raise
        finally:
            trainer.stop()
        if stop.is_set():
            self.queue.release(lease)  # shutting down: let the next worker resume it at once
        elif completed and trainer.returncode == 0:
            self._publish(lease, workspace)
        else:
            self._fail(lease, workspace, trainer.failure_reason())

    def _prepare(self, lease: Lease) -> Workspace:
        with self.database.session() as session:
            workspace = self._workspace(session, session.get_one(Job, lease.job_pk))
        spec_path = workspace.staging / "spec.json"
        if spec_path.exists() and json.loads(spec_path.read_text())["job_id"] != lease.job_id:
            shutil.rmtree(workspace.staging)  # left by an earlier job of this lineage that failed
        workspace.staging.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(workspace.spec, indent=2))
        return workspace

    def _workspace(self, session: Session, job: Job) -> Workspace:
        lineage = session.get_one(Lineage, job.lineage_pk)
        tenant = session.get_one(Tenant, job.tenant_pk)
        training_file = session.scalars(select(File).where(File.id == job.training_file)).one()
        lineage_dir = self.settings.artifact_dir / tenant.name / lineage.name
        final = lineage_dir / f"v{job.version_number}"
        staging = lineage_dir / f"v{job.version_number}.partial"
        parent = lineage_dir / f"v{job.parent_version}" if job.parent_version else None
        spec = {
            "job_id": job.id,
            "tenant": tenant.name,
            "lineage": lineage.name,
            "version": job.version_number,
            "parent_version": job.parent_version,
            "base_model": lineage.base_model,
            "method": {"type": lineage.method_type, lineage.method_type: lineage.method_config},
            "training_file": training_file.path,
            "training_file_sha256": training_file.sha256,
            "parent_dir": str(parent) if parent else None,
            "output_dir": str(staging),
            "hyperparameters": job.hyperparameters,
            "seed": job.seed,
            "checkpoint_every": self.settings.checkpoint_every,
            "cache_dir": str(self.settings.cache_dir),
        }
        return Workspace(staging=staging, final=final, spec=spec)

    def _follow(self, lease: Lease, trainer: TrainerProcess, stop: threading.Event) -> bool:
        """Turn the trainer's lines into events until it exits; True if it completed."""
        completed, renewed_at = False, time.monotonic()
        for line in trainer.lines(tick=min(1.0, self.settings.heartbeat_seconds)):
            if stop.is_set():
                return False
            if line is not None:
                completed |= line.get("type") == "completed"
                with self.queue.guarded(lease) as (session, job):
                    _record(session, job, line)
                renewed_at = time.monotonic()
            elif time.monotonic() - renewed_at >= self.settings.heartbeat_seconds:
                if not self.queue.renew(lease):
                    raise LeaseLost(lease.job_id)  # cancelled or taken over: the finally stops the trainer
                renewed_at = time.monotonic()
        return completed

    def _publish(self, lease: Lease, workspace: Workspace) -> None:
        with self.queue.guarded(lease) as (session, job):
            if not workspace.final.exists():
                os.replace(workspace.staging, workspace.final)
            manifest = json.loads((workspace.final / "manifest.json").read_text())
            lineage = session.get_one(Lineage, job.lineage_pk)
            _promote(session, lineage, job, workspace.final, manifest)
            job.status, job.finished_at, job.lease_token = "succeeded", now(), None
            job.trained_tokens = manifest.get("metrics", {}).get("trained_tokens")
            add_event(session, job, f"New version published: {lineage.name}@{job.version_number}.")
            add_event(session, job, "The job has successfully completed.")

    def _abandon(self, lease: Lease, workspace: Workspace) -> None:
        with self.database.session() as session:
            cancelled = session.get_one(Job, lease.job_pk).status == "cancelled"
        if cancelled:  # a lost lease may mean another worker resumes from the staging folder
            shutil.rmtree(workspace.staging, ignore_errors=True)

    def _fail(self, lease: Lease, workspace: Workspace, reason: str) -> None:
        with self.queue.guarded(lease) as (session, job):
            job.status, job.finished_at, job.lease_token = "failed", now(), None
            job.error = {"code": "training_failed", "message": reason, "param": None}
            add_event(session, job, f"Training failed: {reason}", level="error")
        shutil.rmtree(workspace.staging, ignore_errors=True)


def _record(session: Session, job: Job, line: dict[str, Any]) -> None:
    kind = line.pop("type", "message")
    if kind == "metrics":
        message = f"Step {line['step']}/{line['total_steps']}: training loss={line['train_loss']:.4f}"
        add_event(session, job, message, type="metrics", data=line)
    elif kind == "checkpoint":
        session.add(
            Checkpoint(
                id=f"ftckpt-{secrets.token_hex(12)}",
                job_pk=job.pk,
                step_number=line["step"],
                path=line["path"],
                metrics=line,
            )
        )
        add_event(session, job, f"Checkpoint saved at step {line['step']}.", data=line)
    elif kind == "started":
        resumed = line.get("resumed_from_step") or 0
        origin = f", resuming from step {resumed}" if resumed else ""
        add_event(
            session,
            job,
            f"Training started: {line['total_steps']} steps over {line['examples']} examples{origin}.",
            data=line,
        )
    elif kind == "completed":
        add_event(session, job, f"Training completed after {line['steps']} steps.", data=line)
    else:
        add_event(session, job, str(line.get("message", "")), level=line.get("level", "info"))


def _promote(session: Session, lineage: Lineage, job: Job, path: Path, manifest: dict[str, Any]) -> None:
    # No health gate yet: a version that trained successfully becomes the desired one. The serving
    # tier (docs/serving.md) notices, loads and warms it up, and only then flips the alias to it.
    version = Version(
        lineage_pk=lineage.pk,
        number=job.version_number,
        parent_number=job.parent_version,
        job_id=job.id,
        status="published",
        path=str(path),
        metrics=manifest.get("metrics", {}),
    )
    session.add(version)
    promote_version(session, lineage, version)


def _published_by(final: Path, job_id: str) -> bool:
    manifest = final / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text()).get("job_id") == job_id
