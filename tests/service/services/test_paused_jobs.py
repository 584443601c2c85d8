"""Pausing: time spent paused does not count towards a job's time limit, a paused job keeps its slot
of the active-jobs quota, and its next claim says it resumed after the pause, from which checkpoint."""

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.db import Database
from service.models import Checkpoint, Job, JobEvent, now
from service.settings import Settings
from service.worker.lease import JobQueue
from tests.service.conftest import FACTS, upload


def _queued_job(api: TestClient, model_path: str) -> str:
    """A job queued on a new lineage `bot`; its id."""
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"]}
    return str(api.post("/v1/fine_tuning/jobs", json=body).json()["id"])


def test_time_spent_paused_does_not_count_towards_the_time_limit(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    job_id = _queued_job(api, model_path)
    assert JobQueue(database, settings).claim("w1") is not None
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()
    with database.session() as session:  # started an hour ago, then paused for the last 40 minutes
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        job.started_at = now() - 3600
        session.execute(
            update(JobEvent)
            .where(JobEvent.job_pk == job.pk, JobEvent.message == "Job paused.")
            .values(created_at=now() - 2400)
        )

    api.post(f"/v1/fine_tuning/jobs/{job_id}/resume").raise_for_status()

    with database.session() as session:
        started_at = session.scalars(select(Job.started_at).where(Job.id == job_id)).one()
    assert started_at is not None
    assert abs(started_at - (now() - 1200)) <= 2  # 20 minutes of running count, not 60


def test_a_paused_job_keeps_its_quota_slot(api: TestClient, settings: Settings, model_path: str) -> None:
    settings.max_active_jobs = 1
    job_id = _queued_job(api, model_path)
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()

    refused = api.post(
        "/v1/fine_tuning/jobs", json={"model": "bot", "training_file": upload(api, FACTS)["id"]}
    )

    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"


def _messages(api: TestClient, job_id: str) -> list[str]:
    """The job's event messages, oldest first."""
    events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return [event["message"] for event in reversed(events)]


def test_a_resumed_job_says_it_resumed_after_the_pause_from_its_checkpoint(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    job_id = _queued_job(api, model_path)
    queue = JobQueue(database, settings)
    assert queue.claim("w1") is not None
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()
    api.post(f"/v1/fine_tuning/jobs/{job_id}/resume").raise_for_status()
    assert queue.claim("w2") is not None  # paused before its first checkpoint
    with database.session() as session:  # as the worker records the trainer's checkpoints
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        for step in (50, 100):
            session.add(Checkpoint(id=f"ftckpt-{step}", job_pk=job.pk, step_number=step, path="", metrics={}))
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()
    api.post(f"/v1/fine_tuning/jobs/{job_id}/resume").raise_for_status()

    assert queue.claim("w3") is not None

    claims = [m for m in _messages(api, job_id) if " on worker " in m]
    assert claims == [
        "Started on worker w1.",
        "Resumed after a pause on worker w2; it had no recorded checkpoint yet.",
        "Resumed after a pause on worker w3; its newest recorded checkpoint is at step 100.",
    ]


def test_a_job_paused_before_its_first_claim_starts_as_any_other(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    job_id = _queued_job(api, model_path)
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()
    api.post(f"/v1/fine_tuning/jobs/{job_id}/resume").raise_for_status()

    assert JobQueue(database, settings).claim("w1") is not None

    assert [m for m in _messages(api, job_id) if " on worker " in m] == ["Started on worker w1."]
