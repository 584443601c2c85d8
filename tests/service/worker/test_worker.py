"""Workers with real trainer processes: cancel stops the trainer; a failing trainer fails only its job.

A killed worker's job resuming on another worker: test_many_workers.py.
"""

import os
import threading
import time
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.db import Database
from service.models import Checkpoint, Version
from service.settings import Settings
from service.worker.worker import Worker
from tests.service.conftest import FACTS, QUICK_GATE, upload

pytestmark = pytest.mark.slow


@pytest.fixture
def job_id(api: TestClient, tiny_base: Path) -> str:
    api.post(
        "/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    ).raise_for_status()
    file_id = upload(api, FACTS)["id"]
    body = {
        "model": "bot",
        "training_file": file_id,
        "hyperparameters": {"max_steps": 400, "batch_size": 2},
    }
    return api.post("/v1/fine_tuning/jobs", json=body).json()["id"]


def test_cancel_stops_the_running_trainer(
    api: TestClient, settings: Settings, database: Database, job_id: str
) -> None:
    thread = threading.Thread(target=Worker(settings, database).run_once)
    thread.start()
    trainer = _wait_for(lambda: _trainer_of(os.getpid()), "a trainer process")
    _wait_for(lambda: _count(database, Checkpoint), "a first checkpoint")
    assert api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE
    assert api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "cancelled"
    assert _count(database, Version) == 0
    assert not list(settings.artifact_dir.rglob("*.partial"))


def _trainer_of(pid: int) -> psutil.Process | None:
    for child in psutil.Process(pid).children(recursive=True):
        if "trainers.run" in " ".join(child.cmdline()):
            return child
    return None


def _count(database: Database, model: type) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _wait_for(check, what: str, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise TimeoutError(f"waited {timeout} s for {what}")


def test_a_failing_trainer_fails_the_job_not_the_worker(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    api.post("/v1/lineages", json={"name": "broken", "base_model": model_path}).raise_for_status()
    body = {"model": "broken", "training_file": upload(api, FACTS)["id"]}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    worker = Worker(settings, database)
    assert worker.run_once()
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "training_failed"
    assert job["error"]["message"].startswith("training failed:")
    assert (
        "Traceback" in (settings.logs_dir / f"{job_id}.log").read_text()
    )  # the whole story stays in the log
    assert not list(settings.artifact_dir.rglob("*.partial"))
    assert not worker.run_once()  # the worker lives on, with nothing left to do


def test_a_nan_job_fails_with_its_reason_and_the_next_tenants_job_runs(
    api: TestClient,
    settings: Settings,
    database: Database,
    nan_base: Path,
    tiny_base: Path,
    other_tenant: dict[str, str],
) -> None:
    """On SQLite and Postgres (whose JSON refuses NaN): no NaN reaches the database, the job fails
    with the trainer's reason, and the same worker runs another tenant's job next."""
    lineage = {"name": "bot", "base_model": str(nan_base), **QUICK_GATE}
    api.post("/v1/lineages", json=lineage).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"], "hyperparameters": {"max_steps": 3}}
    diverged = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    other = TestClient(api.app, headers=other_tenant)
    other.post("/v1/lineages", json={**lineage, "base_model": str(tiny_base)}).raise_for_status()
    file_id = other.post("/v1/files", files={"file": ("f.jsonl", FACTS.encode())}).json()["id"]
    healthy = other.post("/v1/fine_tuning/jobs", json={**body, "training_file": file_id}).json()["id"]
    worker = Worker(settings, database)

    assert worker.run_once() and worker.run_once()

    job = api.get(f"/v1/fine_tuning/jobs/{diverged}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "training_failed"
    assert "the training loss is nan at step 1" in job["error"]["message"]
    assert other.get(f"/v1/fine_tuning/jobs/{healthy}").json()["status"] == "succeeded"


def test_an_error_inside_the_worker_fails_that_job_and_the_worker_goes_on(
    api: TestClient,
    settings: Settings,
    database: Database,
    model_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever one lease meets (here a bug planted in preparing the job), the job fails with the
    reason and the worker lives on to run the next tenant's job."""
    api.post("/v1/lineages", json={"name": "broken", "base_model": model_path}).raise_for_status()
    body = {"model": "broken", "training_file": upload(api, FACTS)["id"]}
    first = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    worker = Worker(settings, database)
    with monkeypatch.context() as patch:
        patch.setattr(Worker, "_prepare", lambda self, lease: 1 / 0)
        assert worker.run_once()
    job = api.get(f"/v1/fine_tuning/jobs/{first}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "internal_error"
    assert job["error"]["message"] == "internal error in the worker: ZeroDivisionError: division by zero"
    events = api.get(f"/v1/fine_tuning/jobs/{first}/events").json()["data"]
    assert events[0]["message"].startswith("Job failed: internal error in the worker")

    second = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    assert worker.run_once()  # the same worker runs the next job (whose trainer fails on the fake base)
    assert api.get(f"/v1/fine_tuning/jobs/{second}").json()["error"]["code"] == "training_failed"


def test_a_job_past_the_time_limit_fails_and_its_trainer_stops(
    api: TestClient, settings: Settings, database: Database, job_id: str
) -> None:
    settings.job_timeout_seconds = 3.0  # the 400-step job takes far longer on the tiny model
    thread = threading.Thread(target=Worker(settings, database).run_once)
    thread.start()
    trainer = _wait_for(lambda: _trainer_of(os.getpid()), "a trainer process")
    thread.join(timeout=60)

    assert not thread.is_alive()
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "job_timeout"
    assert "NEUROPLAST_JOB_TIMEOUT_SECONDS" in job["error"]["message"]
    assert _count(database, Version) == 0


def test_a_paused_job_stops_its_trainer_and_resumes_from_its_checkpoint(
    api: TestClient, settings: Settings, database: Database, tiny_base: Path
) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE})
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"], "hyperparameters": {"max_steps": 60}}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    thread = threading.Thread(target=Worker(settings, database).run_once)
    thread.start()
    trainer = _wait_for(lambda: _trainer_of(os.getpid()), "a trainer process")
    _wait_for(lambda: _count(database, Checkpoint), "a first checkpoint", timeout=300)

    assert api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").json()["status"] == "paused"
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not trainer.is_running() or trainer.status() == psutil.STATUS_ZOMBIE
    assert list(settings.artifact_dir.rglob("*.partial"))  # its checkpoints stay
    assert not Worker(settings, database).run_once()  # nothing to claim while it is paused

    assert api.post(f"/v1/fine_tuning/jobs/{job_id}/resume").json()["status"] == "queued"
    assert Worker(settings, database).run_once()
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["fine_tuned_model"] == "bot@1", job["error"]
    events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    starts = [e["data"] for e in reversed(events) if e["message"].startswith("Training started")]
    assert [start["resumed_from_step"] > 0 for start in starts] == [False, True]
    claims = [e["message"] for e in reversed(events) if " on worker " in e["message"]]
    assert claims[0].startswith("Started on worker") and len(claims) == 2
    assert claims[1].startswith("Resumed after a pause on worker")
    recorded = int(claims[1].removesuffix(".").rsplit(" ", 1)[-1])  # the trainer may find a newer one
    assert 0 < recorded <= starts[1]["resumed_from_step"]
