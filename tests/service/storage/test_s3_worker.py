"""A worker killed mid-job on one machine; a worker on another (its own staging and cache folders,
the same database and S3 store) resumes the job from the checkpoint uploaded to the bucket."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.local import free_port
from service.models import Checkpoint, Job, JobEvent, Version
from service.settings import Settings
from service.worker.worker import Worker
from tests.service.conftest import FACTS, QUICK_GATE, upload
from tests.service.storage.s3 import Bucket
from tests.service.storage.test_store import FAIL_FAST
from tests.service.worker.test_worker import _count, _trainer_of, _wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def job_id(api: TestClient, tiny_base: Path) -> str:
    """A 100-step job: long enough to be killed after its second checkpoint (step 10)."""
    lineage = {"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    api.post("/v1/lineages", json=lineage).raise_for_status()
    body = {
        "model": "bot",
        "training_file": upload(api, FACTS)["id"],
        "hyperparameters": {"max_steps": 100, "batch_size": 2},
    }
    return str(api.post("/v1/fine_tuning/jobs", json=body).json()["id"])


def test_a_job_resumes_on_another_machine_from_the_checkpoint_in_s3(
    tmp_path: Path, settings: Settings, database: Database, job_id: str, bucket: Bucket
) -> None:
    store = {"NEUROPLAST_STORE_URL": bucket.url, "NEUROPLAST_STORE_ENDPOINT_URL": bucket.endpoint}
    env = {
        **os.environ,
        **store,
        "NEUROPLAST_DATA_DIR": str(settings.data_dir),
        "NEUROPLAST_LEASE_SECONDS": "3",
        "NEUROPLAST_HEARTBEAT_SECONDS": "0.5",
        "NEUROPLAST_CHECKPOINT_EVERY": "5",
    }
    doomed = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"], env=env, stderr=subprocess.DEVNULL
    )
    trainer = _wait_for(lambda: _trainer_of(doomed.pid), "the doomed worker's trainer")
    _wait_for(lambda: _count(database, Checkpoint) >= 2, "two checkpoints")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    trainer.wait(timeout=10)

    elsewhere = Settings(
        data_dir=tmp_path / "other-machine",
        database_url=settings.resolved_database_url,
        store_url=bucket.url,
        store_endpoint_url=bucket.endpoint,
        lease_seconds=3.0,
        heartbeat_seconds=0.5,
        checkpoint_every=100,  # the doomed worker's checkpoints are the subject; fewer uploads here
    )
    survivor = Worker(elsewhere, database)
    _wait_for(lambda: survivor.run_once(), "the lease to expire and the job to be re-claimed", timeout=300)

    with database.session() as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        assert (job.status, job.attempts) == ("succeeded", 2)
        (version,) = session.scalars(select(Version))
        messages = list(session.scalars(select(JobEvent.message).where(JobEvent.job_pk == job.pk)))
    assert version.path == f"{bucket.url}/acme/bot/v1"
    resumed = [m for m in messages if "resuming from step" in m]
    assert resumed and int(resumed[0].split("resuming from step ")[1].rstrip(".")) >= 5
    assert "acme/bot/v1/manifest.json" in bucket.objects()
    assert not list((tmp_path / "other-machine" / "staging").rglob("*.partial"))


def test_a_worker_outlives_an_unreachable_store(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"]}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    down = settings.model_copy(
        update={
            "store_url": "s3://neuroplast-down/prefix",
            "store_endpoint_url": f"http://127.0.0.1:{free_port()}",
            "store_options": FAIL_FAST,
        }
    )
    worker = Worker(down, database)
    assert worker.run_once()  # claimed, stopped by the store, not crashed
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "running"  # re-claimed once the lease runs out, like after a crash
    assert not worker.run_once()
