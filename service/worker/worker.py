"""A worker: lease a job row, run its trainer process, report events, evaluate, publish the version.

Health checks come through the same queue: the worker runs the evaluator process on the checked
version and stores its result.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.models import File, HealthCheck, Job, Lineage, Tenant, Version, now
from service.observability.logs import log_context
from service.services.files import store_results
from service.services.gate import gate
from service.services.jobs import add_event
from service.services.keys import issue_key, revoke_key
from service.services.reports import build_report
from service.services.webhooks import emit, job_data
from service.settings import Settings
from service.storage.store import ArtifactStore
from service.worker.evaluation import (
    PROBES_FILE,
    earlier_probes,
    health_check_spec,
    needed_versions,
    new_panels,
    record_panel,
    record_scores,
    retention_spec,
    through_gateway,
)
from service.worker.job_log import candidate_version, metrics_csv, record_line, retention_message
from service.worker.lease import JobQueue, Lease, LeaseLost
from service.worker.trainer_process import TrainerProcess
from trainers.contracts.evaluation import EvaluatorSpec, ServingTarget
from trainers.contracts.integrations import Integration
from trainers.contracts.job import ContinualEvalSpec, Hyperparameters, JobSpec
from trainers.contracts.lines import Checkpoint as LineCheckpoint
from trainers.contracts.lines import (
    Completed,
    Line,
    Panel,
    Scores,
)
from trainers.contracts.objectives import Objective
from trainers.contracts.statuses import HealthCheckStatus, JobStatus, VersionStatus

log = logging.getLogger(__name__)


class JobTimedOut(Exception):
    """The job trained past `job_timeout_seconds`: it fails, whichever tenant's it is."""


@dataclass(frozen=True)
class Workspace:
    """Where one job's version is built (`staging`, a local folder) and published (`final`, its
    location in the artifact store)."""

    staging: Path
    final: str
    spec: JobSpec
    probes: dict[str, Any] | None


class Worker:
    """Runs jobs one at a time until stopped."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        self.settings = settings
        self.database = database or Database(settings.resolved_database_url)
        self.queue = JobQueue(self.database, settings)
        self.store = ArtifactStore.from_settings(settings)
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
        with log_context(**self._log_fields(lease)):
            log.info("claimed %s (attempt %d)", lease.id, lease.attempt)
            try:
                if lease.work is HealthCheck:
                    self._check(lease, stop or threading.Event())
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
            self._log(lease),
            processes=processes,
            threads=self.settings.trainer_threads,
            offline=not self.settings.hub_models,
        )
        try:
            completed = self._follow(
                lease, trainer, stop, self._record_line(lease, workspace), self._deadline(lease)
            )
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

    def _check(self, lease: Lease, stop: threading.Event) -> None:
        """Run a health check's suites on its version and store the result."""
        with self.database.session() as session:
            check = session.get_one(HealthCheck, lease.pk)
            needed = needed_versions(session, session.get_one(Lineage, check.lineage_pk), check.version + 1)
        self.store.fetch(*needed)
        with self.database.session() as session:
            check = session.get_one(HealthCheck, lease.pk)
            spec = health_check_spec(session, session.get_one(Lineage, check.lineage_pk), check, self.store)
        lines, failure = self._run_evaluator(lease, spec, stop)
        if stop.is_set():
            self.queue.release(lease)
            return
        with self.queue.guarded(lease) as (session, check):
            check.finished_at, check.lease_token = now(), None
            if failure is not None:
                check.status = HealthCheckStatus.FAILED
                check.error = {"code": "evaluation_failed", "message": failure, "param": None}
                return
            lineage = session.get_one(Lineage, check.lineage_pk)
            # Panel scores of a version are stored once; a retention row, once per job's gate.
            panels = [line for line in lines if isinstance(line, Panel)]
            record_panel(session, lineage, new_panels(session, lineage, panels))
            session.flush()
            tenant = session.get_one(Tenant, check.tenant_pk)
            origin = f"health check {check.id}" + (
                f" (schedule {check.schedule_id})" if check.schedule_id else ""
            )
            report = build_report(session, tenant, lineage, check.version, check.suites, origin, self.store)
            check.status, check.report_id = HealthCheckStatus.SUCCEEDED, report.id
            check.result = {
                "verdict": report.verdict,
                "report_id": report.id,
                "suites": report.body["suites"],
                "retention": {line.job_id: line.scores for line in lines if isinstance(line, Scores)},
            }
        self.store.upload_reports()

    def _conclude(self, lease: Lease, workspace: Workspace, version_dir: Path, stop: threading.Event) -> None:
        """Evaluate the job's new version (in `version_dir`) and publish it.

        Evaluated through the gateway, the version is published first, as a `candidate` that the
        gateway can load under `<lineage>@<N>` (serving the lineage's name stays on its promoted
        version until the gate decides).
        """
        through_serving = self._gateway_url() is not None
        if through_serving:
            self._publish_candidate(lease, workspace)
            version_dir = self.store.fetch(workspace.final)[0]
        try:
            scores = self._evaluate(lease, version_dir, stop, through_serving)
        except LeaseLost:
            self._abandon(lease, workspace)
            raise
        if not stop.is_set():
            self._publish(lease, workspace, scores)

    def _gateway_url(self) -> str | None:
        """The gateway the evaluator asks, when versions are evaluated as users are served."""
        return self.settings.gateway_url if self.settings.evaluate_through_serving else None

    def _evaluate(
        self, lease: Lease, version_dir: Path, stop: threading.Event, through_serving: bool = False
    ) -> list[Scores | Panel] | None:
        """Score the job's new version (status `evaluating`); None when the evaluator failed.

        A failed evaluation does not fail the job: its version is published, with a warning
        event and an empty row of the retention matrix, and the health gate (if on) rejects it,
        since nothing shows it healthy.
        """
        with self.queue.guarded(lease) as (session, job):
            job.status = JobStatus.EVALUATING
            where = " through the gateway, as it is served" if through_serving else ""
            add_event(session, job, f"Evaluating the new version{where} on the probes of every job so far.")
            lineage = session.get_one(Lineage, job.lineage_pk)
            spec = retention_spec(session, lineage, job, version_dir, self.store)
        lines, failure = self._run_evaluator(lease, spec, stop, lineage if through_serving else None)
        with self.queue.guarded(lease) as (session, job):
            if failure is not None:
                add_event(session, job, f"Evaluation failed: {failure}", level="warn")
            else:
                scores = [line for line in lines if isinstance(line, Scores)]
                own = next((line.scores for line in scores if line.job_id == job.id), None)
                entries = len(scores)
                add_event(session, job, retention_message(own, entries), data=own)
        return lines if failure is None else None

    def _run_evaluator(
        self, lease: Lease, spec: EvaluatorSpec, stop: threading.Event, served: Lineage | None = None
    ) -> tuple[list[Scores | Panel], str | None]:
        """Run `python -m trainers.evaluate` on `spec`; its `scores` and `panel` lines, and why it failed
        (None if it did not). With `served`, the lineage's versions are asked of the gateway, with a
        key of its tenant that lives as long as the evaluation."""
        spec_path = self.settings.logs_dir / f"{lease.id}.eval.json"
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        with self._evaluator_key(served) as key:
            if served is not None and key is not None:
                with self.database.session() as session:
                    gateway = ServingTarget(f"{self._gateway_url()}/v1", key)
                    through_gateway(session, served, spec, gateway)
            spec.write(spec_path)
            return self._evaluated(lease, spec_path, stop)

    @contextlib.contextmanager
    def _evaluator_key(self, lineage: Lineage | None) -> Iterator[str | None]:
        """A key of `lineage`'s tenant for one evaluation through the gateway, revoked after it."""
        if lineage is None:
            yield None
            return
        with self.database.session() as session:
            tenant = session.get_one(Tenant, lineage.tenant_pk)
            row, key = issue_key(session, tenant, "member", f"evaluator of {lineage.name}")
            key_id = row.key_id
        try:
            yield key
        finally:
            with self.database.session() as session:
                revoke_key(session, key_id)

    def _evaluated(
        self, lease: Lease, spec_path: Path, stop: threading.Event
    ) -> tuple[list[Scores | Panel], str | None]:
        evaluator = TrainerProcess(
            spec_path,
            self._log(lease),
            module="trainers.evaluate",
            threads=self.settings.trainer_threads,
            offline=not self.settings.hub_models,
        )
        lines: list[Line] = []
        try:
            completed = self._follow(lease, evaluator, stop, lines.append, self._deadline(lease))
        finally:
            evaluator.stop()
        results = [line for line in lines if isinstance(line, Scores | Panel)]
        if completed and evaluator.returncode == 0:
            return results, None
        return results, evaluator.failure_reason()

    def _processes(self, lease: Lease) -> int:
        """The job's trainer processes: as asked for, else as its first attempt recorded, else this
        worker's default (at most the batch size). Recorded, so a resumed job keeps the count its
        checkpoints' optimizer shards were written with."""
        with self.queue.guarded(lease) as (_, job):
            default = min(self.settings.trainer_processes, job.hyperparameters["batch_size"])
            job.processes = job.processes or default
            return job.processes

    def _log(self, lease: Lease) -> Path:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.logs_dir / f"{lease.id}.log"

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
            workspace = self._workspace(session, session.get_one(Job, lease.pk))
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

    def _workspace(self, session: Session, job: Job) -> Workspace:
        lineage = session.get_one(Lineage, job.lineage_pk)
        tenant = session.get_one(Tenant, job.tenant_pk)
        training_file = session.scalars(select(File).where(File.id == job.training_file)).one()
        validation_file = None
        if job.validation_file is not None:
            validation_file = session.scalars(select(File).where(File.id == job.validation_file)).one()
        number = job.version_number or 0
        final = self.store.version_location(tenant.name, lineage.name, number)
        staging = self.store.staging_dir(tenant.name, lineage.name, number)
        parent = None
        if job.parent_version:  # where it was published, should the store have moved since
            location = session.scalars(
                select(Version.path).where(
                    Version.lineage_pk == lineage.pk, Version.number == job.parent_version
                )
            ).one()
            parent = self.store.local_version(location)
        evaluation = lineage.evaluation_config
        continual_eval = None
        if job.probes is not None and evaluation.continual_eval_every > 0:
            continual_eval = ContinualEvalSpec(
                every=evaluation.continual_eval_every,
                items=evaluation.continual_eval_items,
                earlier=earlier_probes(session, lineage, number, self.store),
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
            checkpoint_every=self.settings.checkpoint_every,
            cache_dir=self.settings.cache_dir,
            held_out_rows=job.probes["held_out_rows"] if job.probes else [],
            continual_eval=continual_eval,
            precision=self.settings.trainer_precision,
            objective=Objective.from_json(job.objective),
        )
        return Workspace(staging=staging, final=final, spec=spec, probes=job.probes)

    def _follow(
        self,
        lease: Lease,
        process: TrainerProcess,
        stop: threading.Event,
        on_line: Callable[[Line], None],
        deadline: float,
    ) -> bool:
        """Hand the process's lines to `on_line` and renew the lease until it exits; True if it completed.

        Raises JobTimedOut once the wall clock passes `deadline` (Unix seconds).
        """
        completed, renewed_at = False, time.monotonic()
        for line in process.lines(tick=min(1.0, self.settings.heartbeat_seconds)):
            if stop.is_set():
                return False
            if time.time() > deadline:
                noun = "job" if lease.work is Job else "health check"
                raise JobTimedOut(
                    f"The {noun} ran for longer than this service's limit of "
                    f"{self.settings.job_timeout_seconds:g} s (NEUROPLAST_JOB_TIMEOUT_SECONDS)."
                )
            if line is not None:
                completed |= isinstance(line, Completed)
                on_line(line)
            if time.monotonic() - renewed_at >= self.settings.heartbeat_seconds:
                if not self.queue.renew(lease):
                    raise LeaseLost(lease.id)  # cancelled or taken over: the finally stops the trainer
                renewed_at = time.monotonic()
        return completed

    def _deadline(self, lease: Lease) -> float:
        """When the job or check must have finished: its first start plus the timeout, over all attempts."""
        with self.database.session() as session:
            work: Job | HealthCheck = session.get_one(lease.work, lease.pk)  # type: ignore[assignment]
            started = work.started_at or time.time()
        return started + self.settings.job_timeout_seconds

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
