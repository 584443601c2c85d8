"""Pausing: time spent paused does not count towards a job's time limit, and a paused job keeps
its slot of the active-jobs quota."""

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.db import Database
from service.models import Job, JobEvent, now
from service.settings import Settings
from service.worker.lease import JobQueue
from tests.service.conftest import FACTS, upload


def test_time_spent_paused_does_not_count_towards_the_time_limit(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"]}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
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
    assert abs(started_at - (now() - 1200)) <= 2  # 20 minutes of running count, not 60


def test_a_paused_job_keeps_its_quota_slot(api: TestClient, settings: Settings, model_path: str) -> None:
    settings.max_active_jobs = 1
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"]}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    api.post(f"/v1/fine_tuning/jobs/{job_id}/pause").raise_for_status()

    refused = api.post("/v1/fine_tuning/jobs", json=body)

    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
