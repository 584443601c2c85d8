"""Structured logs: JSON lines with the ids of the job or request they are about."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.deps import TenantDep
from service.models import Job
from service.observability.logs import configure_logging, log_context
from service.settings import Settings
from tests.service.conftest import FACTS, upload


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """What `configure_logging` writes; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


def records(stderr: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in stderr.readouterr().err.splitlines()]


def test_json_lines_carry_the_context_and_tracebacks(stderr: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "INFO")
    log = logging.getLogger("service.worker.worker")
    with log_context(job_id="ftjob-1", lineage="bot", version=None):
        with log_context(tenant="acme"):
            log.info("claimed %s", "ftjob-1")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    log.debug("below the level")
    log.info("outside")

    first, failed, outside = records(stderr)
    assert first["message"] == "claimed ftjob-1" and first["level"] == "INFO"
    assert first["logger"] == "service.worker.worker"
    assert (first["job_id"], first["lineage"], first["tenant"]) == ("ftjob-1", "bot", "acme")
    assert "version" not in first  # None values are left out
    assert first["timestamp"].endswith("+00:00")
    assert failed["level"] == "ERROR" and "tenant" not in failed  # the inner context ended
    assert "ValueError: boom" in failed["exception"]
    assert "job_id" not in outside


def test_text_lines_append_the_context(stderr: pytest.CaptureFixture[str]) -> None:
    configure_logging("text")
    with log_context(job_id="ftjob-1"):
        logging.getLogger("service").warning("lost the lease")
    assert stderr.readouterr().err.rstrip().endswith("WARNING service lost the lease [job_id=ftjob-1]")


def test_an_api_request_logs_its_request_id_and_tenant(
    settings: Settings, database: Database, stderr: pytest.CaptureFixture[str], api: TestClient
) -> None:
    configure_logging("json")
    app = api.app

    @app.get("/v1/log-probe")  # type: ignore[attr-defined]
    def probe(tenant: TenantDep) -> dict[str, str]:
        logging.getLogger("service.api").info("handled")
        return {}

    api.get("/v1/log-probe", headers={"x-request-id": "req-42"}).raise_for_status()
    api.get("/v1/log-probe").raise_for_status()

    handled = [line for line in records(stderr) if line["message"] == "handled"]
    assert handled[0]["request_id"] == "req-42" and handled[0]["tenant"] == "acme"
    assert len(handled[1]["request_id"]) == 16 and handled[1]["tenant"] == "acme"


@pytest.mark.slow
def test_a_worker_logs_json_lines_with_its_jobs_ids(
    settings: Settings, database: Database, api: TestClient, model_path: str
) -> None:
    api.post("/v1/lineages", json={"name": "broken", "base_model": model_path}).raise_for_status()
    body = {"model": "broken", "training_file": upload(api, FACTS)["id"]}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    env = {
        **os.environ,
        "NEUROPLAST_DATA_DIR": str(settings.data_dir),
        "NEUROPLAST_DATABASE_URL": database.url,
        "NEUROPLAST_POLL_SECONDS": "0.1",
        "NEUROPLAST_LOG_FORMAT": "json",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while _status(database, job_id) != "failed":  # the model folder holds no weights
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)  # how docker and Kubernetes stop it
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0

    lines = [json.loads(line) for line in errors.splitlines()]  # every line is one JSON object
    about_job = [line for line in lines if line.get("job_id") == job_id]
    assert [line["message"] for line in about_job][:1] == [f"claimed {job_id} (attempt 1)"]
    assert any(line["message"].startswith("training failed") for line in about_job)
    assert all(
        (line["tenant"], line["lineage"], line["version"]) == ("acme", "broken", 1) for line in about_job
    )


def _status(database: Database, job_id: str) -> str:
    with database.session() as session:
        return session.query(Job).filter(Job.id == job_id).one().status
