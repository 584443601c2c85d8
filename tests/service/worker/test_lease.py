"""Leases: per-lineage order, exclusivity under racing workers, expiry, cancel, pause and guarded writes.

Each test runs on SQLite (compare-and-swap claims) and Postgres (`SELECT … FOR UPDATE SKIP LOCKED`).
"""

import threading
import time
from collections import defaultdict

import pytest
from sqlalchemy import select

from service.db import Database
from service.models import File, Job, Lineage, Tenant
from service.services.jobs import pause_job, resume_job
from service.settings import Settings
from service.worker.lease import JobQueue, LeaseLost
from tests.service.conftest import DATABASES


def _jobs(database: Database, lineages: dict[str, int], tenant_name: str = "acme") -> dict[str, list[str]]:
    """Queue `count` jobs on each named lineage of a new tenant; returns their ids per lineage, in order."""
    created: dict[str, list[str]] = {}
    with database.session() as session:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
        session.add(
            File(
                id=f"file-{tenant_name}",
                tenant_pk=tenant.pk,
                filename="f",
                purpose="fine-tune",
                bytes=1,
                rows=1,
                sha256="0",
                path="/f",
            )
        )
        for name, count in lineages.items():
            lineage = Lineage(
                id=f"lin-{tenant_name}-{name}",
                tenant_pk=tenant.pk,
                name=name,
                base_model="m",
                method_type="lora",
                method_config={},
            )
            session.add(lineage)
            session.flush()
            for index in range(count):
                job = Job(
                    id=f"ftjob-{name}-{index}",
                    tenant_pk=tenant.pk,
                    lineage_pk=lineage.pk,
                    training_file=f"file-{tenant_name}",
                    status="queued",
                    hyperparameters={},
                    seed=0,
                    suffix=None,
                    metadata_=None,
                )
                session.add(job)
                session.flush()
                created.setdefault(name, []).append(job.id)
    return created


def _insert_job(database: Database, lineage_name: str, pk: int) -> str:
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == lineage_name)).one()
        job = Job(
            pk=pk,
            id=f"ftjob-{lineage_name}-pk{pk}",
            tenant_pk=lineage.tenant_pk,
            lineage_pk=lineage.pk,
            training_file="file-acme",
            status="queued",
            hyperparameters={},
            seed=0,
            suffix=None,
            metadata_=None,
        )
        session.add(job)
    return job.id


def _status(database: Database, job_id: str) -> str:
    with database.session() as session:
        return session.scalars(select(Job.status).where(Job.id == job_id)).one()


def _finish(queue: JobQueue, lease) -> None:  # type: ignore[no-untyped-def]
    with queue.guarded(lease) as (_, job):
        job.status, job.lease_token = "succeeded", None


class TestOrdering:
    def test_one_lineage_runs_in_submission_order(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 3})["a"]
        queue = JobQueue(database, settings)
        first = queue.claim("w1")
        assert first is not None and first.id == ids[0]
        assert queue.claim("w2") is None  # the next job waits for the running one
        _finish(queue, first)
        second = queue.claim("w2")
        assert second is not None and second.id == ids[1]

    def test_lineages_run_in_parallel(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 2, "b": 2})
        queue = JobQueue(database, settings)
        claimed = {queue.claim("w1").id, queue.claim("w2").id}  # type: ignore[union-attr]
        assert claimed == {ids["a"][0], ids["b"][0]}
        assert queue.claim("w3") is None

    def test_a_cancelled_job_unblocks_the_next(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 2})["a"]
        with database.session() as session:
            session.scalars(select(Job).where(Job.id == ids[0])).one().status = "cancelled"
        assert JobQueue(database, settings).claim("w1").id == ids[1]  # type: ignore[union-attr]

    def test_versions_are_numbered_at_first_claim(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 1})["a"]
        JobQueue(database, settings).claim("w1")
        with database.session() as session:
            job = session.scalars(select(Job).where(Job.id == ids[0])).one()
            assert (job.version_number, job.parent_version, job.attempts) == (1, None, 1)

    def test_tenants_take_turns(self, database: Database, settings: Settings) -> None:
        """A tenant with many queued jobs does not go first with all of them: one queued after
        them by another tenant runs next, and the tenant with fewer jobs running goes first."""
        flood = [ids[0] for ids in _jobs(database, {f"l{i}": 1 for i in range(6)}).values()]
        (single,) = _jobs(database, {"only": 1}, tenant_name="globex")["only"]
        queue = JobQueue(database, settings)

        first = queue.claim("w1")
        assert first is not None and first.id == flood[0]
        second = queue.claim("w2")  # acme has one running, globex none
        assert second is not None and second.id == single
        _finish(queue, first)
        _finish(queue, second)
        assert [queue.claim("w1").id for _ in range(5)] == flood[1:]  # type: ignore[union-attr]

    def test_a_tenant_that_ran_last_waits_its_turn(self, database: Database, settings: Settings) -> None:
        flood = [ids[0] for ids in _jobs(database, {f"l{i}": 1 for i in range(3)}).values()]
        first = JobQueue(database, settings).claim("w1")
        assert first is not None and first.id == flood[0]
        _finish(JobQueue(database, settings), first)
        (single,) = _jobs(database, {"only": 1}, tenant_name="globex")["only"]

        nothing_running = JobQueue(database, settings).claim("w1")
        assert nothing_running is not None and nothing_running.id == single  # acme started one; globex none

    def test_a_job_that_appears_late_waits_for_the_running_one(
        self, database: Database, settings: Settings
    ) -> None:
        """On Postgres a job inserted concurrently can become visible after a later job of its lineage
        was claimed (a lower pk, committed later): it must not run beside that job."""
        _jobs(database, {"a": 0})
        queue = JobQueue(database, settings)
        running = _insert_job(database, "a", pk=100)
        assert queue.claim("w1").id == running  # type: ignore[union-attr]
        late = _insert_job(database, "a", pk=50)
        assert queue.claim("w2") is None
        with database.session() as session:
            job = session.scalars(select(Job).where(Job.id == running)).one()
            job.status, job.lease_token = "succeeded", None
        assert queue.claim("w2").id == late  # type: ignore[union-attr]

    def test_racing_workers_keep_every_lineage_in_order(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {f"l{i}": 3 for i in range(6)})
        total = sum(len(job_ids) for job_ids in ids.values())
        claimed: dict[str, list[str]] = defaultdict(list)
        running: set[str] = set()  # lineages with a job between claim and finish
        overlaps: list[str] = []
        finished = 0
        lock = threading.Lock()

        def work(owner: str) -> None:
            nonlocal finished
            queue = JobQueue(Database(settings.resolved_database_url), settings)
            while finished < total:
                lease = queue.claim(owner)
                if lease is None:
                    time.sleep(0.01)
                    continue
                lineage = lease.id.split("-")[1]
                with lock:
                    if lineage in running:
                        overlaps.append(lease.id)
                    running.add(lineage)
                    claimed[lineage].append(lease.id)
                time.sleep(0.005)  # the "job"
                with lock:  # before the row is finished, or the next job could start and look overlapping
                    running.discard(lineage)
                _finish(queue, lease)
                with lock:
                    finished += 1

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert overlaps == []
        assert dict(claimed) == ids


class TestExclusivity:
    def test_racing_workers_claim_each_job_once(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {f"l{i}": 1 for i in range(24)})
        expected = {job_ids[0] for job_ids in ids.values()}
        claims: list[str] = []
        lock = threading.Lock()

        def work(owner: str) -> None:
            queue = JobQueue(Database(settings.resolved_database_url), settings)
            while (lease := queue.claim(owner)) is not None:
                with lock:
                    claims.append(lease.id)

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claims) == sorted(expected)

    @pytest.mark.parametrize("database_url", DATABASES[1:], indirect=True)
    def test_a_claim_passes_over_a_row_another_worker_is_claiming(
        self, database: Database, settings: Settings
    ) -> None:
        """Postgres: `FOR NO KEY UPDATE SKIP LOCKED`, so a worker never waits on another's claim."""
        ids = _jobs(database, {"a": 1, "b": 1})
        claims: list[str | None] = []
        with database.session() as other:  # another worker in the middle of claiming lineage a's job
            other.execute(select(Job).where(Job.id == ids["a"][0]).with_for_update())
            claimer = threading.Thread(
                target=lambda: claims.append(getattr(JobQueue(database, settings).claim("w2"), "id", None))
            )
            claimer.start()
            claimer.join(timeout=5)
            assert not claimer.is_alive(), "the claim waited for the other worker's lock"
        assert claims == [ids["b"][0]]


class TestLeaseLoss:
    def test_an_expired_lease_is_reclaimed_and_the_old_holder_cannot_write(
        self, database: Database, settings: Settings
    ) -> None:
        _jobs(database, {"a": 1})
        queue = JobQueue(database, settings.model_copy(update={"lease_seconds": 0.2}))
        stale = queue.claim("w1")
        time.sleep(0.3)
        fresh = queue.claim("w2")
        assert fresh is not None and fresh.id == stale.id and fresh.attempt == 2  # type: ignore[union-attr]
        assert not queue.renew(stale)  # type: ignore[arg-type]
        with pytest.raises(LeaseLost), queue.guarded(stale):  # type: ignore[arg-type]
            pass
        assert queue.renew(fresh)

    def test_cancel_revokes_the_lease(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 1})["a"]
        queue = JobQueue(database, settings)
        lease = queue.claim("w1")
        with database.session() as session:
            job = session.scalars(select(Job).where(Job.id == ids[0])).one()
            job.status, job.lease_token = "cancelled", None
        assert not queue.renew(lease)  # type: ignore[arg-type]
        assert queue.claim("w2") is None

    def test_a_job_that_keeps_losing_workers_fails(self, database: Database, settings: Settings) -> None:
        ids = _jobs(database, {"a": 1})["a"]
        queue = JobQueue(database, settings.model_copy(update={"lease_seconds": 0.01, "max_attempts": 2}))
        for _ in range(2):
            assert queue.claim("w") is not None
            time.sleep(0.05)
        assert queue.claim("w") is None
        assert _status(database, ids[0]) == "failed"

    def test_release_hands_the_job_back_without_spending_an_attempt(
        self, database: Database, settings: Settings
    ) -> None:
        _jobs(database, {"a": 1})
        queue = JobQueue(database, settings)
        lease = queue.claim("w1")
        queue.release(lease)  # type: ignore[arg-type]
        again = queue.claim("w2")
        assert again is not None and again.attempt == 1

    def test_a_paused_job_holds_its_lineage_until_resumed_without_spending_attempts(
        self, database: Database, settings: Settings
    ) -> None:
        ids = _jobs(database, {"a": 2})["a"]
        queue = JobQueue(database, settings.model_copy(update={"max_attempts": 2}))
        for _ in range(3):  # more pauses than max_attempts
            lease = queue.claim("w1")
            assert lease is not None and lease.id == ids[0] and lease.attempt == 1
            _by_owner(database, pause_job, ids[0])
            assert not queue.renew(lease)  # the worker stops its trainer
            assert queue.claim("w2") is None  # the lineage's next job waits for the paused one
            assert _status(database, ids[0]) == "paused"
            _by_owner(database, resume_job, ids[0])
        assert _status(database, ids[0]) == "queued"
        with database.session() as session:
            assert session.scalars(select(Job.version_number).where(Job.id == ids[0])).one() == 1


def _by_owner(database: Database, action, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """`action` (pause_job, resume_job) as the job's tenant calls it through the API."""
    with database.session() as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        action(session, session.get_one(Tenant, job.tenant_pk), job_id)
