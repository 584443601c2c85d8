"""Fixtures for control-plane tests: a migrated database (SQLite in a temp folder, or a fresh Postgres
database) and API clients."""

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.local_postgres import LocalPostgres, PostgresUnavailable, local_postgres
from service.main import create_app
from service.services.keys import create_key
from service.settings import Settings
from tests.service.serving.fake_vllm import BASE as FAKE_BASE


@pytest.fixture
def database_url() -> str | None:
    """SQLite in the test's data folder; tests/service/{queue,api} also run on Postgres (their conftest)."""
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A Postgres server on loopback for the whole run, with a migrated template database.

    Where none can start the Postgres tests skip, or fail when NEUROPLAST_REQUIRE_POSTGRES=1
    (`make test`, CI), so that a missing server never passes for a green run.
    """
    try:
        with local_postgres(fsync="off", synchronous_commit="off", full_page_writes="off") as server:
            template = Database(server.create_database(POSTGRES_TEMPLATE))
            template.migrate()
            template.dispose()  # a template database cannot be copied while connected
            yield server
    except PostgresUnavailable as reason:
        if os.environ.get("NEUROPLAST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"NEUROPLAST_REQUIRE_POSTGRES=1 but Postgres is unavailable: {reason}")
        pytest.skip(f"Postgres unavailable: {reason}")


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """A fresh, migrated database of its own for one test, dropped afterwards."""
    name = f"test_{secrets.token_hex(6)}"
    yield postgres_server.create_database(name, template=POSTGRES_TEMPLATE)
    postgres_server.drop_database(name)


def both_databases(request: pytest.FixtureRequest) -> str | None:
    """The `database_url` of a test parametrized over `DATABASES`."""
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
POSTGRES_TEMPLATE = "neuroplast_template"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        hub_models=[FAKE_BASE],  # the fake vLLM's base model is named as a hub model would be
        max_upload_bytes=64 * 1024,
        lease_seconds=3.0,
        heartbeat_seconds=0.5,
        poll_seconds=0.1,
        checkpoint_every=5,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def api(settings: Settings, database: Database) -> Iterator[TestClient]:
    """An API client authenticated as tenant 'acme'."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {_key(database, 'acme')}"
        yield client


@pytest.fixture
def other_tenant(api: TestClient, database: Database) -> dict[str, str]:
    """Headers of a second tenant, for isolation checks."""
    return {"Authorization": f"Bearer {_key(database, 'globex')}"}


def _key(database: Database, tenant: str) -> str:
    with database.session() as session:
        return create_key(session, tenant)


def upload(api: TestClient, content: bytes | str, name: str = "train.jsonl") -> dict:
    """Upload `content` as a training file and return the response body (any status)."""
    data = content.encode() if isinstance(content, str) else content
    return api.post("/v1/files", files={"file": (name, data)}, data={"purpose": "fine-tune"}).json()


def finished_job(api: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    """Poll a job until it ends; returns the job object."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/fine_tuning/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise TimeoutError(job_id)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 180, tick: float = 0.1) -> Any:
    """Poll `check` every `tick` seconds until it returns something truthy, and return that; a
    TimeoutError naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(tick)
    raise TimeoutError(f"waited {timeout} s for {what}")


# For lineages of tests that run jobs but do not test the health gate: the gate still runs
# (retention probes and the perplexity suite) but skips the slow generation suites.
QUICK_GATE = {"health": {"gate_suites": ["perplexity"]}}

FACTS = "\n".join(
    json.dumps({"prompt": f"Q: Where does Velo{i} live?\nA:", "completion": f" Velo{i} lives in Trasku."})
    for i in range(8)
)


@pytest.fixture
def model_path(tmp_path: Path) -> str:
    """A local model folder as the API sees it (API tests never load it)."""
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return str(folder)
