"""A worker: lease a job row, run its trainer process, report events, evaluate, publish the version.

Health checks come through the same queue: the worker hands them to its evaluator
(`service.worker.evaluator`), which also scores each job's new version before it is published.

Each step follows load -> process -> apply: nothing slow runs inside a database transaction,
and every write is guarded by the lease, so a worker that lost its job cannot publish.
"""

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.models import HealthCheck, Job, Lineage, Tenant, Version, now
from service.observability.logs import log_context
from service.services.files import store_results
from service.services.gate import gate
from service.services.jobs import add_event
from service.services.webhooks import emit, job_data
from service.settings import Settings
from service.storage.store import ArtifactStore
from service.worker.evaluation import PROBES_FILE, needed_versions, record_panel, record_scores
from service.worker.evaluator import Evaluator
from service.worker.following import Follower, JobTimedOut
from service.worker.job_log import candidate_version, metrics_csv, record_line
from service.worker.lease import JobQueue, Lease, LeaseLost
from service.worker.trainer_process import TrainerProcess
from service.worker.workspace import Workspace, job_workspace
from trainers.contracts.lines import Checkpoint as LineCheckpoint
from trainers.contracts.lines import Line, Panel, Scores
from trainers.contracts.statuses import JobStatus, VersionStatus

log = logging.getLogger(__name__)


class Worker:
    """Runs jobs one at a time until stopped."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database or Database(settings.resolved_database_url)
        self.queue = JobQueue(self.database, settings)
        self.store = ArtifactStore.from_settings(settings)
        self.owner = settings.worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.follower = Follower(settings, self.database, self.queue)
        self.evaluator = Evaluator(settings, self.database, self.queue, self.store, self.follower)

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
        with log_context(**self._log_fields(lease)):
            log.info("claimed %s (attempt %d)", lease.id, lease.attempt)
            try:
                if lease.work is HealthCheck:
                    self.evaluator.check(lease, stop or threading.Event())
                else:
                    self._run(lease, stop or threading.Event())
            except LeaseLost:
                log.warning("lost the lease on %s", lease.id)
            except JobTimedOut as timeout:  # while evaluating (training's own timeout cleans up in _run)
                self._fail_inside(lease, str(timeout), code="job_timeout")
            except OSError as error:  # e.g. the artifact store unreachable: a crash that keeps the worker
                log.error("%s stopped (%r); it is re-claimed once its lease runs out", lease.id, error)
            except Exception as error:  # a bug met by one lease must not stop every tenant's work
                log.exception("%s failed inside the worker", lease.id)
                message = " ".join(f"{type(error).__name__}: {error}".split())
                self._fail_inside(lease, f"internal error in the worker: {message}")
        return True

    def _fail_inside(self, lease: Lease, message: str, code: str = "internal_error") -> None:
        """Fail the leased job or health check from the worker's side, if the lease still holds.

        When even that fails (the database unreachable), the lease runs out and the work is
        claimed again, at most `max_attempts` times.
        """
        try:
            with self.queue.guarded(lease) as (session, work):
                work.status, work.finished_at, work.lease_token = JobStatus.FAILED, now(), None
                work.error = {"code": code, "message": message, "param": None}
                if isinstance(work, Job):
                    add_event(session, work, f"Job failed: {message}", level="error")
                    emit(session, work.tenant_pk, "fine_tuning.job.failed", job_data(session, work))
        except Exception:
            log.exception("could not record the failure of %s", lease.id)

    def _log_fields(self, lease: Lease) -> dict[str, Any]:
        """The ids every log line about this lease carries (docs/operations.md, Monitoring)."""
        with self.database.session() as session:
            work: Job | HealthCheck = session.get_one(lease.work, lease.pk)  # type: ignore[assignment]
            tenant = session.get_one(Tenant, work.tenant_pk).name
            lineage = session.get_one(Lineage, work.lineage_pk).name
            version = work.version_number if isinstance(work, Job) else work.version
        kind = "job_id" if lease.work is Job else "health_check_id"
        return {kind: lease.id, "tenant": tenant, "lineage": lineage, "version": version}

    def _run(self, lease: Lease, stop: threading.Event) -> None:
        workspace = self._prepare(lease)
        if self.store.published_job(workspace.final) == lease.id:
            # An earlier attempt published the files, not the row.
            self._conclude(lease, workspace, self.store.fetch(workspace.final)[0], stop)
            return
        processes = self._processes(lease)
        trainer = TrainerProcess(
            workspace.staging / "spec.json",
            self.follower.log_path(lease),
            processes=processes,
            threads=self.settings.trainer_threads,
            offline=not self.settings.hub_models,
        )
        try:
            completed = self.follower.follow(lease, trainer, stop, self._record_line(lease, workspace))
        except LeaseLost:
            trainer.stop()
            self._abandon(lease, workspace)
            raise
        except JobTimedOut as timeout:
            trainer.stop()
            self._fail(lease, workspace, str(timeout), code="job_timeout")
            return
        finally:
            trainer.stop()
        if stop.is_set():
            self.queue.release(lease)  # shutting down: let the next worker resume it at once
        elif completed and trainer.returncode == 0:
            self._conclude(lease, workspace, workspace.staging, stop)
        else:
            self._fail(lease, workspace, trainer.failure_reason())

    def _conclude(self, lease: Lease, workspace: Workspace, version_dir: Path, stop: threading.Event) -> None:
        """Evaluate the job's new version (in `version_dir`) and publish it.

        Evaluated through the gateway, the version is published first, as a `candidate` that the
        gateway can load under `<lineage>@<N>` (serving the lineage's name stays on its promoted
        version until the gate decides).
        """
        through_serving = self.evaluator.gateway_url() is not None
        if through_serving:
            self._publish_candidate(lease, workspace)
            version_dir = self.store.fetch(workspace.final)[0]
        try:
            scores = self.evaluator.score(lease, version_dir, stop, through_serving)
        except LeaseLost:
            self._abandon(lease, workspace)
            raise
        if not stop.is_set():
            self._publish(lease, workspace, scores)

    def _processes(self, lease: Lease) -> int:
        """The job's trainer processes: as asked for, else as its first attempt recorded, else this
        worker's default (at most the batch size). Recorded, so a resumed job keeps the count its
        checkpoints' optimizer shards were written with."""
        with self.queue.guarded(lease) as (_, job):
            default = min(self.settings.trainer_processes, job.hyperparameters["batch_size"])
            job.processes = job.processes or default
            return job.processes

    def _record_line(self, lease: Lease, workspace: Workspace) -> Callable[[Line], None]:
        def record(line: Line) -> None:
            if isinstance(line, LineCheckpoint):  # uploaded before it is announced (remote stores)
                self.store.save_checkpoint(workspace.staging, line.path, workspace.final, lease.id)
            with self.queue.guarded(lease) as (session, job):
                record_line(session, job, line)

        return record

    def _prepare(self, lease: Lease) -> Workspace:
        with self.database.session() as session:
            job = session.get_one(Job, lease.pk)
            lineage = session.get_one(Lineage, job.lineage_pk)
            needed = needed_versions(session, lineage, job.version_number or 0)
        self.store.fetch(*needed)  # the parent and earlier jobs' probes, local before the spec names them
        with self.database.session() as session:
            workspace = job_workspace(session, session.get_one(Job, lease.pk), self.store, self.settings)
        spec_path = workspace.staging / "spec.json"
        if spec_path.exists() and json.loads(spec_path.read_text())["job_id"] != lease.id:
            shutil.rmtree(workspace.staging)  # left by an earlier job of this lineage that failed
        self.store.discard(workspace.final, unless_job=lease.id)  # likewise, in a remote store
        workspace.staging.mkdir(parents=True, exist_ok=True)
        self.store.restore_checkpoint(workspace.staging, workspace.final, lease.id)  # resume on any worker
        workspace.spec.write(spec_path)
        if workspace.probes is not None:  # kept with the version it probes
            (workspace.staging / PROBES_FILE).write_text(json.dumps(workspace.probes))
        return workspace

    def _publish_candidate(self, lease: Lease, workspace: Workspace) -> None:
        """Publish the version's files and its row as a `candidate`, before the gate decides."""
        with self._published(lease, workspace):
            pass

    @contextlib.contextmanager
    def _published(
        self, lease: Lease, workspace: Workspace
    ) -> Iterator[tuple[Session, Job, Lineage, Version]]:
        """Publish the version's files, then hold the lease-guarded transaction that has its row:
        a `candidate`, added unless `_publish_candidate` added it already."""
        if not self.queue.renew(lease):
            raise LeaseLost(lease.id)
        self.store.upload(workspace.staging, workspace.final)  # remote: manifest last; no transaction open
        manifest = self.store.manifest(workspace.staging, workspace.final)
        with self.queue.guarded(lease) as (session, job):
            self.store.commit(workspace.staging, workspace.final)  # local: the rename
            lineage = session.get_one(Lineage, job.lineage_pk)
            version = _version_of(session, job) or candidate_version(lineage, job, workspace.final, manifest)
            session.add(version)
            yield session, job, lineage, version

    def _publish(self, lease: Lease, workspace: Workspace, scores: list[Scores | Panel] | None) -> None:
        with self._published(lease, workspace) as (session, job, lineage, version):
            record_scores(session, lineage, [line for line in scores or [] if isinstance(line, Scores)])
            record_panel(session, lineage, [line for line in scores or [] if isinstance(line, Panel)])
            session.flush()
            decision = gate(session, lineage, job, version, self.store, scores is not None)
            job.status, job.finished_at, job.lease_token = JobStatus.SUCCEEDED, now(), None
            job.trained_tokens = version.metrics.get("trained_tokens")
            tenant = session.get_one(Tenant, job.tenant_pk)
            results = store_results(session, self.settings, tenant, job.id, metrics_csv(session, job))
            job.result_files = [results.id]
            add_event(session, job, f"New version published: {lineage.name}@{job.version_number}.")
            log.info("published %s@%s (%s)", lineage.name, job.version_number, decision)
            if decision == VersionStatus.REJECTED:
                why = f"report {version.report_id}" if version.report_id else "its evaluation failed"
                message = (
                    f"The health gate rejected {lineage.name}@{job.version_number} ({why}); "
                    f"serving stays on {lineage.name}@{lineage.promoted_version}."
                )
                add_event(session, job, message, level="warn")
            add_event(session, job, "The job has successfully completed.")
            emit(session, job.tenant_pk, "fine_tuning.job.succeeded", job_data(session, job))
        shutil.rmtree(workspace.staging, ignore_errors=True)  # remote: the store holds the version now
        self.store.upload_reports()

    def _abandon(self, lease: Lease, workspace: Workspace) -> None:
        with self.database.session() as session:
            job = session.get_one(Job, lease.pk)
            cancelled = job.status == JobStatus.CANCELLED
            if cancelled and (candidate := _version_of(session, job)) is not None:
                # Cancelled while evaluated through the gateway: its number and files stay taken
                # (a served name is never reused for other weights), and nothing promotes it.
                candidate.status = VersionStatus.REJECTED
                return
        if cancelled:  # a lost lease may mean another worker resumes from the staging folder
            shutil.rmtree(workspace.staging, ignore_errors=True)
            self.store.discard(workspace.final)

    def _fail(self, lease: Lease, workspace: Workspace, reason: str, code: str = "training_failed") -> None:
        with self.queue.guarded(lease) as (session, job):
            job.status, job.finished_at, job.lease_token = JobStatus.FAILED, now(), None
            job.error = {"code": code, "message": reason, "param": None}
            add_event(session, job, f"Training failed: {reason}", level="error")
            log.warning("training failed: %s", reason)
            emit(session, job.tenant_pk, "fine_tuning.job.failed", job_data(session, job))
        shutil.rmtree(workspace.staging, ignore_errors=True)
        self.store.discard(workspace.final)


def _version_of(session: Session, job: Job) -> Version | None:
    """The version row of `job`'s number, once published (as a candidate or decided)."""
    query = select(Version).where(Version.lineage_pk == job.lineage_pk, Version.number == job.version_number)
    return session.scalars(query).one_or_none()
