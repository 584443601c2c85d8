"""`/v1/health_checks`: queueing checks of a version; bad requests answered with the field at fault."""

import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.models import HealthCheck, Lineage, Version


def _published(database: Database, versions: int) -> None:
    """Record `versions` published versions of lineage 'bot', the newest promoted (as a worker would)."""
    with database.session() as session:
        lineage = session.query(Lineage).filter_by(name="bot").one()
        for number in range(1, versions + 1):
            session.add(
                Version(
                    lineage_pk=lineage.pk,
                    number=number,
                    parent_number=number - 1 or None,
                    job_id=f"ftjob-{number}",
                    status="promoted" if number == versions else "retired",
                    path=f"/store/bot/v{number}",
                    metrics={},
                )
            )
        lineage.promoted_version = versions


def test_a_check_of_the_promoted_version_is_queued(api: TestClient, database: Database, lineage: str) -> None:
    _published(database, versions=2)
    check = api.post("/v1/health_checks", json={"lineage": lineage}).json()
    assert check["object"] == "health_check" and check["id"].startswith("hc-")
    assert (check["lineage"], check["version"], check["status"]) == ("bot", 2, "queued")
    assert check["suites"] == ["retention", "reasoning", "long_context", "safety", "perplexity"]
    assert check["result"] is None
    assert api.get(f"/v1/health_checks/{check['id']}").json() == check
    pinned = api.post("/v1/health_checks", json={"lineage": lineage, "version": 1}).json()
    assert pinned["version"] == 1


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"lineage": "nope"}, 404, "lineage"),
        ({"lineage": "bot", "version": 7}, 404, "version"),
        ({"lineage": "bot", "version": 0}, 400, "version"),
        ({"lineage": "bot", "suites": ["telepathy"]}, 400, "suites.0"),
        ({"lineage": "bot", "suites": []}, 400, "suites"),
        ({"lineage": "bot", "colour": "red"}, 400, "colour"),
        ({}, 400, "lineage"),
    ],
)
def test_bad_requests_name_the_field_and_queue_nothing(
    api: TestClient, database: Database, lineage: str, payload: dict, status: int, param: str
) -> None:
    _published(database, versions=1)
    response = api.post("/v1/health_checks", json=payload)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["param"] == param
    with database.session() as session:
        assert session.query(HealthCheck).count() == 0


def test_a_lineage_with_nothing_promoted_has_nothing_to_check(api: TestClient, lineage: str) -> None:
    response = api.post("/v1/health_checks", json={"lineage": lineage})
    assert response.status_code == 409 and response.json()["error"]["param"] == "version"


def test_another_tenants_check_is_not_found(
    api: TestClient, database: Database, lineage: str, other_tenant: dict[str, str]
) -> None:
    _published(database, versions=1)
    check = api.post("/v1/health_checks", json={"lineage": lineage}).json()
    assert api.get(f"/v1/health_checks/{check['id']}", headers=other_tenant).status_code == 404
    response = api.post("/v1/health_checks", json={"lineage": lineage}, headers=other_tenant)
    assert response.status_code == 404
    assert api.get("/v1/health_checks/hc-nope").status_code == 404


def test_checks_are_listed_per_lineage_or_for_the_tenant(
    api: TestClient, database: Database, lineage: str, model_path: str
) -> None:
    _published(database, versions=2)
    api.post("/v1/lineages", json={"name": "other", "base_model": model_path}).raise_for_status()
    first = api.post("/v1/health_checks", json={"lineage": lineage, "version": 1}).json()
    second = api.post("/v1/health_checks", json={"lineage": lineage}).json()

    listed = api.get("/v1/health_checks", params={"lineage": lineage}).json()
    assert [check["id"] for check in listed["data"]] == [second["id"], first["id"]]
    assert listed["data"][1] == first and not listed["has_more"]
    assert api.get("/v1/health_checks", params={"lineage": "other"}).json()["data"] == []
    page = api.get("/v1/health_checks", params={"limit": 1}).json()
    assert [check["id"] for check in page["data"]] == [second["id"]] and page["has_more"]
    unknown = api.get("/v1/health_checks", params={"lineage": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "lineage"
