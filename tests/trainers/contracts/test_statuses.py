"""Statuses: groups that partition the states, stored and shown as their plain string values."""

import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.main import create_app
from service.models import Tenant
from service.settings import Settings
from trainers.contracts.statuses import HealthCheckStatus, JobStatus


def test_a_job_is_active_or_terminal_never_both() -> None:
    assert set(JobStatus.active()) | set(JobStatus.terminal()) == set(JobStatus)
    assert not set(JobStatus.active()) & set(JobStatus.terminal())
    assert set(JobStatus.working()) < set(JobStatus.active())
    assert set(HealthCheckStatus.active()) <= {*JobStatus.active()}  # leases treat both alike


def test_the_rest_schema_lists_every_job_status(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(data_dir=tmp_path, serving=False))) as api:
        schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert schema["JobStatus"]["enum"] == [status.value for status in JobStatus]


def test_a_stored_status_reads_back_equal_to_its_member(tmp_path) -> None:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.migrate()
    with database.session() as session:
        session.add(Tenant(name=JobStatus.QUEUED))  # any string column will do
    with database.session() as session:
        name = session.scalar(select(Tenant.name))
    assert type(name) is str and name == JobStatus.QUEUED == "queued"
    database.dispose()


def test_the_contracts_import_no_torch_and_nothing_of_their_users() -> None:
    code = (
        "import sys\n"
        "import trainers.contracts.statuses\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "assert not loaded & {'torch', 'service', 'eval', 'memory'}, loaded\n"
        "assert not {name for name in sys.modules if name.startswith('trainers.')} - "
        "{'trainers.contracts', 'trainers.contracts.statuses'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
