"""The Postgres backend as an operator first meets it: an empty database, processes starting together.

The queue and API tests run on Postgres too (tests/service/worker, tests/service/api).
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from service.db import MIGRATIONS_DIR, Database
from service.local import local_service
from service.local_postgres import LocalPostgres
from service.models import File, Job, Lineage, Tenant

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database(postgres_server: LocalPostgres) -> Iterator[str]:
    """A database with no schema at all, as `createdb` leaves it."""
    yield postgres_server.create_database("empty")
    postgres_server.drop_database("empty")


@pytest.mark.slow  # starts three processes
def test_processes_started_together_on_an_empty_database_all_come_up(empty_database: str) -> None:
    env = {**os.environ, "NEUROPLAST_DATABASE_URL": empty_database}
    migrations = [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in migrations]
    assert [process.returncode for process in migrations] == [0, 0, 0], outputs
    database = Database(empty_database)
    with database.session() as session:
        revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    database.dispose()
    assert revision == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


@pytest.mark.slow  # starts the service
def test_serve_on_postgres_creates_its_data_folder_and_dev_key(empty_database: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet" / "data"
    with local_service(data_dir, worker=False, serving="false", database_url=empty_database) as service:
        lineages = httpx.get(f"{service.url}/v1/lineages", headers={"Authorization": f"Bearer {service.key}"})
    assert lineages.status_code == 200  # the printed dev key works
    assert not list(data_dir.glob("*.db"))  # the state lives in Postgres, not in a SQLite file


def test_counts_past_32_bits_are_stored(postgres_url: str) -> None:
    """A big job's trained tokens and a big file's size fit (Postgres INTEGER stops at 2**31 - 1)."""
    database = Database(postgres_url)
    with database.session() as session:
        tenant = Tenant(name="acme")
        session.add(tenant)
        session.flush()
        lineage = Lineage(
            id="lin-1", tenant_pk=tenant.pk, name="a", base_model="m", method_type="lora", method_config={}
        )
        size = 5 * 2**30
        session.add_all(
            [
                lineage,
                File(
                    id="file-1",
                    tenant_pk=tenant.pk,
                    filename="f",
                    purpose="fine-tune",
                    bytes=size,
                    rows=1,
                    sha256="0",
                    path="/f",
                ),
            ]
        )
        session.flush()
        session.add(
            Job(
                id="ftjob-1",
                tenant_pk=tenant.pk,
                lineage_pk=lineage.pk,
                training_file="file-1",
                status="succeeded",
                hyperparameters={},
                seed=0,
                suffix=None,
                metadata_=None,
                trained_tokens=3 * 10**9,
            )
        )
    with database.session() as session:
        stored = (
            session.scalars(select(Job.trained_tokens)).one(),
            session.scalars(select(File.bytes)).one(),
        )
    database.dispose()
    assert stored == (3 * 10**9, size)
