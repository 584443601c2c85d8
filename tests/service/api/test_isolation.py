"""Tenant isolation over every endpoint: another tenant's ids and names answer 404 (never 200 or 500)
and never show in lists, `/v1/models` or results.

Routes are enumerated from the app's OpenAPI schema, so an endpoint added later fails here until its
parameters are listed below.
"""

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.main import create_app
from service.models import Lineage, Report
from service.services.keys import create_key
from service.settings import Settings
from tests.service.conftest import FACTS, upload
from tests.service.serving import conftest as serving
from tests.service.serving.fake_vllm import BASE, fake_vllm, running

# Bodies a route needs to get past validation to the lookup that must answer 404.
BODIES = {("POST", "/v1/lineages/{name}/promote"): {"version": 1}}
# Admin routes are not tenant-scoped: a member key gets a 403 (tests/service/api/test_keys.py).
ADMIN_PREFIXES = ("/v1/keys", "/v1/tenants")


@pytest.fixture
def acme(settings: Settings, database: Database) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Tenant acme with one of everything, served through a fake vLLM; and acme's ids by parameter."""
    settings.webhook_private_networks = True
    with running(fake_vllm()) as url:
        settings.vllm_urls, settings.reconcile_seconds = [url], 0.05
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {_key(database, 'acme')}"
            yield client, _populate(client, database)


def _populate(client: TestClient, database: Database) -> dict[str, str]:
    file_id = upload(client, FACTS)["id"]
    client.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
    serving.publish(database, "acme", "bot", 1, "/store/acme/bot/v1")
    job = client.post("/v1/fine_tuning/jobs", json={"model": "bot", "training_file": file_id}).json()
    check = client.post("/v1/health_checks", json={"lineage": "bot"}).json()
    schedule = client.post("/v1/health_check_schedules", json={"lineage": "bot", "cron": "0 3 * * *"}).json()
    report_id = _report(database)
    webhook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}).json()
    client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").raise_for_status()  # an event to deliver
    deadline = time.monotonic() + 10
    while "bot" not in {model["id"] for model in client.get("/v1/models").json()["data"]}:
        assert time.monotonic() < deadline, "acme/bot@1 was never served"
        time.sleep(0.02)
    return {
        "file_id": file_id,
        "name": "bot",
        "job_id": job["id"],
        "check_id": check["id"],
        "schedule_id": schedule["id"],
        "report_id": report_id,
        "webhook_id": webhook["id"],
    }


def _report(database: Database) -> str:
    """A health report of acme's bot@1, as a worker's health check stores one."""
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bot")).one()
        body = {
            "id": "report-acme",
            "object": "health_report",
            "lineage": "bot",
            "version": 1,
            "reference_version": 0,
            "origin": "health check",
            "verdict": "ok",
            "gate": None,
            "suites": {},
            "created_at": 0,
        }
        session.add(
            Report(
                id="report-acme",
                tenant_pk=lineage.tenant_pk,
                lineage_pk=lineage.pk,
                version=1,
                verdict="ok",
                body=body,
                path="/store/acme/bot/reports/report-acme",
            )
        )
    return "report-acme"


def test_every_tenant_route_answers_404_to_another_tenant(
    acme: tuple[TestClient, dict[str, str]], other_tenant: dict[str, str]
) -> None:
    client, ids = acme
    checked = []
    for route, methods in _routes(client):
        params = _path_params(route)
        if not params or route.startswith(ADMIN_PREFIXES):
            continue
        missing = params - ids.keys()
        assert not missing, f"{route}: add acme's value for {missing} to _populate"
        for method in methods:
            checked.append((method, route.format(**ids), BODIES.get((method, route))))
    for method, path, body in checked:
        answer = client.request(method, path, json=body, headers=other_tenant)
        assert answer.status_code == 404, (method, path, answer.text)
    # Acme's own key reaches every one of them, so the 404s above are isolation, not typos.
    for method, path, body in sorted(checked, key=lambda call: call[0] == "DELETE"):
        assert client.request(method, path, json=body).status_code not in (404, 500), (method, path)
    assert len(checked) >= 14, checked


def test_lists_models_and_creates_never_reveal_another_tenant(
    acme: tuple[TestClient, dict[str, str]], other_tenant: dict[str, str]
) -> None:
    client, ids = acme
    for route, methods in _routes(client):
        if "GET" in methods and not _path_params(route) and route.startswith("/v1/"):
            if route.startswith(ADMIN_PREFIXES):
                assert client.get(route, headers=other_tenant).status_code == 403
                continue
            answer = client.get(route, headers=other_tenant)
            assert answer.status_code == 200 and answer.json()["data"] == [], route
            assert all(value not in answer.text for value in ids.values()), route
    for model in ("bot", "bot@1"):
        answer = client.post("/v1/completions", headers=other_tenant, json={"model": model, "prompt": "hi"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found", model
    borrowed = {
        "/v1/fine_tuning/jobs": {"model": "bot", "training_file": ids["file_id"]},
        "/v1/health_checks": {"lineage": "bot"},
    }
    for path, body in borrowed.items():
        assert client.post(path, headers=other_tenant, json=body).status_code == 404, path
    # The other tenant may use the same lineage name: its own, empty of acme's versions.
    client.post("/v1/lineages", headers=other_tenant, json={"name": "bot", "base_model": BASE})
    mine = client.get("/v1/lineages/bot/retention", headers=other_tenant).json()
    assert mine["versions"] == [] and ids["job_id"] not in str(mine)
    assert client.get("/v1/lineages/bot/versions", headers=other_tenant).json()["data"] == []


def _routes(client: TestClient) -> list[tuple[str, list[str]]]:
    """Every documented path with its methods, upper case."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [(path, [method.upper() for method in operations]) for path, operations in paths.items()]


def _path_params(path: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", path))


def _key(database: Database, tenant: str) -> str:
    with database.session() as session:
        return create_key(session, tenant)
