"""The worker's evaluator step: it runs the evaluator process (`python -m trainers.evaluate`) under a
lease, and records what it says.

Two kinds of lease need it: a job, whose new version is scored before it is published (`score`),
and a health check, whose version is scored and reported on (`check`). When versions are evaluated
as users are served (`gateway_url`), the evaluator asks the gateway for them with a key of the
lineage's tenant that lives as long as the evaluation. What the evaluator is asked, and how its
answers are stored, is `service.worker.evaluation`.
"""

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from service.db import Database
from service.models import HealthCheck, Lineage, Tenant, now
from service.services.jobs import add_event
from service.services.keys import issue_key, revoke_key
from service.services.reports import build_report
from service.settings import Settings
from service.storage.store import ArtifactStore
from service.worker.evaluation import (
    health_check_spec,
    needed_versions,
    new_panels,
    record_panel,
    retention_spec,
    through_gateway,
)
from service.worker.following import Follower
from service.worker.job_log import retention_message
from service.worker.lease import JobQueue, Lease
from service.worker.trainer_process import TrainerProcess
from trainers.contracts.evaluation import EvaluatorSpec, ServingTarget
from trainers.contracts.lines import Line, Panel, Scores
from trainers.contracts.statuses import HealthCheckStatus, JobStatus

__all__ = ["Evaluator"]


class Evaluator:
    """Scores a job's new version, or a health check's version, for one worker."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        queue: JobQueue,
        store: ArtifactStore,
        follower: Follower,
    ) -> None:
        self.settings = settings
        self.database = database
        self.queue = queue
        self.store = store
        self.follower = follower

    def gateway_url(self) -> str | None:
        """The gateway the evaluator asks, when versions are evaluated as users are served."""
        return self.settings.gateway_url if self.settings.evaluate_through_serving else None

    def score(
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
        lines, failure = self._run(lease, spec, stop, lineage if through_serving else None)
        with self.queue.guarded(lease) as (session, job):
            if failure is not None:
                add_event(session, job, f"Evaluation failed: {failure}", level="warn")
            else:
                scores = [line for line in lines if isinstance(line, Scores)]
                own = next((line.scores for line in scores if line.job_id == job.id), None)
                entries = len(scores)
                add_event(session, job, retention_message(own, entries), data=own)
        return lines if failure is None else None

    def check(self, lease: Lease, stop: threading.Event) -> None:
        """Run a health check's suites on its version and store the result."""
        with self.database.session() as session:
            check = session.get_one(HealthCheck, lease.pk)
            needed = needed_versions(session, session.get_one(Lineage, check.lineage_pk), check.version + 1)
        self.store.fetch(*needed)
        with self.database.session() as session:
            check = session.get_one(HealthCheck, lease.pk)
            spec = health_check_spec(session, session.get_one(Lineage, check.lineage_pk), check, self.store)
        lines, failure = self._run(lease, spec, stop)
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

    def _run(
        self, lease: Lease, spec: EvaluatorSpec, stop: threading.Event, served: Lineage | None = None
    ) -> tuple[list[Scores | Panel], str | None]:
        """Run `python -m trainers.evaluate` on `spec`; its `scores` and `panel` lines, and why it failed
        (None if it did not). With `served`, the lineage's versions are asked of the gateway, with a
        key of its tenant that lives as long as the evaluation."""
        spec_path = self.settings.logs_dir / f"{lease.id}.eval.json"
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        with self._key(served) as key:
            if served is not None and key is not None:
                with self.database.session() as session:
                    gateway = ServingTarget(f"{self.gateway_url()}/v1", key)
                    through_gateway(session, served, spec, gateway)
            spec.write(spec_path)
            return self._evaluated(lease, spec_path, stop)

    @contextlib.contextmanager
    def _key(self, lineage: Lineage | None) -> Iterator[str | None]:
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
        """Follow the evaluator process on `spec_path` to its end: its results, and why it failed."""
        evaluator = TrainerProcess(
            spec_path,
            self.follower.log_path(lease),
            module="trainers.evaluate",
            threads=self.settings.trainer_threads,
            offline=not self.settings.hub_models,
        )
        lines: list[Line] = []
        try:
            completed = self.follower.follow(lease, evaluator, stop, lines.append)
        finally:
            evaluator.stop()
        results = [line for line in lines if isinstance(line, Scores | Panel)]
        if completed and evaluator.returncode == 0:
            return results, None
        return results, evaluator.failure_reason()
