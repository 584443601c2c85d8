"""The scheduler queues each due run of a schedule exactly once, also across a restart."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.background.scheduler import Scheduler
from service.db import Database
from service.models import HealthCheck, HealthCheckSchedule
from service.services.schedules import next_run
from service.settings import Settings
from tests.service.api.test_health_checks import _published

HOUR = 3600.0


@pytest.fixture
def schedule(api: TestClient, database: Database, model_path: str) -> dict:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    _published(database, versions=2)
    body = {"lineage": "bot", "cron": "0 * * * *", "suites": ["retention", "perplexity"]}
    created = api.post("/v1/health_check_schedules", json=body)
    assert created.status_code == 200, created.json()
    return created.json()


def _checks(database: Database) -> list[HealthCheck]:
    with database.session() as session:
        return list(session.scalars(select(HealthCheck).order_by(HealthCheck.pk)))


def test_a_due_run_is_queued_once_across_a_restart(
    schedule: dict, database: Database, settings: Settings, tmp_path: Path
) -> None:
    due = float(schedule["next_run_at"])
    assert due % HOUR == 0  # "0 * * * *": on the hour
    before = Scheduler(settings, database)
    assert before.run_once(now=due - 1) == 0  # not due yet
    assert before.run_once(now=due + 5) == 1
    assert before.run_once(now=due + 6) == 0  # the same run, already queued
    # A restarted control plane (a new scheduler on the same database) does not queue it again ...
    after = Scheduler(settings, Database(settings.resolved_database_url))
    assert after.run_once(now=due + 30) == 0
    # ... and queues the next run when it falls due.
    _finish_checks(database)
    assert after.run_once(now=due + HOUR + 1) == 1
    checks = _checks(database)
    assert [(check.version, check.schedule_id, check.suites) for check in checks] == [
        (2, schedule["id"], ["retention", "perplexity"]),
        (2, schedule["id"], ["retention", "perplexity"]),
    ]


def test_a_run_due_while_the_last_check_is_unfinished_is_skipped(
    schedule: dict, database: Database, settings: Settings
) -> None:
    due = float(schedule["next_run_at"])
    scheduler = Scheduler(settings, database)
    assert scheduler.run_once(now=due + 1) == 1
    assert [scheduler.run_once(now=due + hours * HOUR + 1) for hours in (1, 2, 3)] == [0, 0, 0]
    _finish_checks(database)
    assert scheduler.run_once(now=due + 4 * HOUR + 1) == 1
    assert len(_checks(database)) == 2


def _finish_checks(database: Database) -> None:
    with database.session() as session:
        for check in session.scalars(select(HealthCheck)):
            check.status = "succeeded"


def test_runs_missed_while_down_are_not_replayed(
    schedule: dict, database: Database, settings: Settings
) -> None:
    due = float(schedule["next_run_at"])
    assert Scheduler(settings, database).run_once(now=due + 5 * HOUR + 10) == 1  # five runs missed: one check
    with database.session() as session:
        row = session.scalars(select(HealthCheckSchedule)).one()
        assert row.next_run_at == due + 6 * HOUR


def test_two_schedulers_racing_queue_one_check(
    schedule: dict, database: Database, settings: Settings
) -> None:
    due = float(schedule["next_run_at"])
    first, second = (
        Scheduler(settings, database),
        Scheduler(settings, Database(settings.resolved_database_url)),
    )
    assert first.run_once(now=due + 1) + second.run_once(now=due + 1) == 1


def test_schedules_are_listed_and_deleted(schedule: dict, api: TestClient) -> None:
    assert [row["id"] for row in api.get("/v1/health_check_schedules").json()["data"]] == [schedule["id"]]
    assert api.get(f"/v1/health_check_schedules/{schedule['id']}").json() == schedule
    assert api.delete(f"/v1/health_check_schedules/{schedule['id']}").status_code == 200
    assert api.get(f"/v1/health_check_schedules/{schedule['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"lineage": "bot", "cron": "every day at noon"}, 400, "cron"),
        ({"lineage": "bot", "cron": "0 0 * * * *"}, 400, "cron"),
        ({"lineage": "bot", "cron": "61 * * * *"}, 400, "cron"),
        ({"lineage": "nope", "cron": "0 * * * *"}, 404, "lineage"),
        ({"lineage": "bot", "cron": "0 * * * *", "suites": ["dreams"]}, 400, "suites.0"),
    ],
)
def test_bad_schedules_name_the_field(
    schedule: dict, api: TestClient, body: dict, status: int, param: str
) -> None:
    response = api.post("/v1/health_check_schedules", json=body)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["param"] == param


def test_next_run_is_strictly_after() -> None:
    assert next_run("0 * * * *", 7200.0) == 10800.0
    assert next_run("30 2 * * *", 0.0) == 2 * HOUR + 1800
