"""Several `neuroplast worker` processes on one database, on SQLite and on Postgres (the queue conftest).

Lineages run in parallel, each strictly in order; a worker killed with SIGKILL mid-job loses its
lease, another worker resumes the job from its last checkpoint, one version is published, and no
job is lost or trained to completion twice.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Checkpoint, Job, JobEvent, Lineage, Version
from service.settings import Settings
from tests.service.conftest import FACTS, upload, wait_for

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
# The least evaluator work per job: the queue, not the health gate, is under test here.
LIGHT_EVALUATION = {
    "evaluation": {"recall_items": 4, "recognition_items": 4, "continual_eval_every": 0},
    "health": {"gate": False, "gate_suites": []},
}


def test_a_killed_worker_loses_its_job_to_another_that_resumes_it(
    api: TestClient, settings: Settings, database: Database, tiny_base: Path, workers: "Workers"
) -> None:
    file_id = upload(api, FACTS)["id"]
    for name in ("a", "b"):
        lineage = {"name": name, "base_model": str(tiny_base), **LIGHT_EVALUATION}
        api.post("/v1/lineages", json=lineage).raise_for_status()
    # a1 runs long enough to be killed between its first checkpoint (step 5) and its end.
    a1, a2, b1 = (_submit(api, lineage, file_id, steps) for lineage, steps in (("a", 60), ("a", 2), ("b", 2)))

    doomed = workers.start("doomed")
    wait_for(lambda: _job(database, a1).owner == "doomed", "the doomed worker to claim a1")
    workers.start("survivor")
    # Lineages run in parallel: b1 is claimed by the second worker while a1 runs; a2 waits for a1.
    wait_for(lambda: _job(database, b1).owner == "survivor", "the survivor to claim b1")
    assert _job(database, a1).status == "running" and _job(database, a2).status == "queued"

    trainer = wait_for(lambda: _trainer_of(doomed.pid), "the doomed worker's trainer")
    wait_for(lambda: _checkpoints(database, a1) >= 1, "a1's first checkpoint", tick=0.02)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert _job(database, a1).status == "running", "a1 ended before its worker could be killed"
    killed_at = time.monotonic()
    trainer.wait(timeout=10)  # the trainer dies with its worker (parent-death signal)

    wait_for(lambda: _job(database, a1).owner == "survivor", "the survivor to re-claim a1", timeout=120)
    assert time.monotonic() - killed_at < LEASE_SECONDS + 60  # expiry, plus b1's remaining work
    jobs = {job_id: _wait_finished(database, job_id) for job_id in (a1, a2, b1)}
    assert {job.status for job in jobs.values()} == {"succeeded"}, {j: job.error for j, job in jobs.items()}

    assert (jobs[a1].attempts, jobs[a1].owner) == (2, "survivor")
    starts = [event for event in _events(database, a1) if event.message.startswith("Training started")]
    resumed_from = [int((event.data or {})["resumed_from_step"]) for event in starts]
    assert len(resumed_from) == 2 and resumed_from[0] == 0
    assert resumed_from[1] >= 5  # from the doomed worker's checkpoint, not from scratch
    for job_id in (a1, a2, b1):
        completed = [e for e in _events(database, job_id) if e.message.startswith("Training completed")]
        assert len(completed) == 1, job_id  # trained to the end once, however often it was claimed
    assert _versions(database) == {("a", 1): a1, ("a", 2): a2, ("b", 1): b1}
    assert _started_at(database, a2) >= (jobs[a1].finished_at or 0)  # strictly after a1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Training only: serving (vLLM) has tests of its own in tests/service/serving/."""
    return settings.model_copy(update={"serving": False})


class Workers:
    """`neuroplast worker` processes on the test's database, with short leases; stopped at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, worker_id: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "NEUROPLAST_DATA_DIR": str(self.settings.data_dir),
            "NEUROPLAST_WORKER_ID": worker_id,
            "NEUROPLAST_LEASE_SECONDS": str(LEASE_SECONDS),
            "NEUROPLAST_HEARTBEAT_SECONDS": "0.5",
            "NEUROPLAST_POLL_SECONDS": "0.2",
            "NEUROPLAST_CHECKPOINT_EVERY": "5",
        }
        if self.settings.database_url is not None:
            env["NEUROPLAST_DATABASE_URL"] = self.settings.database_url
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], env=env, stderr=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # a clean stop releases any lease
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(settings: Settings, database: Database) -> Iterator[Workers]:
    started = Workers(settings)
    yield started
    started.stop()


def _submit(api: TestClient, lineage: str, file_id: str, steps: int) -> str:
    body = {
        "model": lineage,
        "training_file": file_id,
        "hyperparameters": {"max_steps": steps, "batch_size": 2},
    }
    response = api.post("/v1/fine_tuning/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def _job(database: Database, job_id: str) -> Job:
    with database.session() as session:
        return session.scalars(select(Job).where(Job.id == job_id)).one()


def _wait_finished(database: Database, job_id: str) -> Job:
    finished = ("succeeded", "failed", "cancelled")
    return wait_for(lambda: (job := _job(database, job_id)).status in finished and job, job_id, timeout=300)


def _checkpoints(database: Database, job_id: str) -> int:
    with database.session() as session:
        return len(session.scalars(select(Checkpoint).join(Job).where(Job.id == job_id)).all())


def _events(database: Database, job_id: str) -> list[JobEvent]:
    with database.session() as session:
        query = select(JobEvent).join(Job).where(Job.id == job_id).order_by(JobEvent.pk)
        return list(session.scalars(query))


def _started_at(database: Database, job_id: str) -> int:
    return min(e.created_at for e in _events(database, job_id) if e.message.startswith("Started"))


def _versions(database: Database) -> dict[tuple[str, int], str]:
    with database.session() as session:
        rows = session.execute(select(Lineage.name, Version.number, Version.job_id).join(Lineage))
        return {(name, number): job_id for name, number, job_id in rows}


def _trainer_of(pid: int) -> psutil.Process | None:
    for child in psutil.Process(pid).children(recursive=True):
        if "trainers.run" in " ".join(child.cmdline()):
            return child
    return None
