"""Per-tenant quotas on every resource (429 `quota_exceeded` naming the quota, nothing written) and
the gateway's request rate (429 with retry-after)."""

import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.main import create_app
from service.models import Lineage, Version
from service.services.keys import create_key
from service.services.quotas import QUOTAS
from service.settings import Settings
from tests.service.conftest import FACTS, upload


def _promoted(database: Database) -> None:
    """Give lineage `bot` of every tenant a promoted version 1, as a worker would."""
    with database.session() as session:
        for lineage in session.query(Lineage).filter_by(name="bot"):
            session.add(
                Version(
                    lineage_pk=lineage.pk,
                    number=1,
                    parent_number=None,
                    job_id=f"ftjob-{lineage.pk}",
                    status="promoted",
                    path="/store/v1",
                    metrics={},
                )
            )
            lineage.promoted_version = 1


class Caller:
    """One tenant's view of the API: requests made with its key."""

    def __init__(self, api: TestClient, headers: dict[str, str], base: str) -> None:
        self.api, self.headers, self.base = api, headers, base

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return self.api.post(path, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    def listed(self, path: str) -> list[dict[str, object]]:
        return self.api.get(path, headers=self.headers).json()["data"]  # type: ignore[no-any-return]


def _file(tenant: Caller, i: int) -> httpx.Response:
    return tenant.post("/v1/files", files={"file": ("f.jsonl", FACTS.encode())})


# Quota -> (its limit in the test, a request that makes one more, the listing that counts them).
CASES: dict[str, tuple[int, Callable[[Caller, int], httpx.Response], str]] = {
    "max_lineages": (
        3,  # `bot` counts
        lambda tenant, i: tenant.post("/v1/lineages", json={"name": f"extra{i}", "base_model": tenant.base}),
        "/v1/lineages",
    ),
    "max_files": (2, _file, "/v1/files"),
    "max_file_bytes": (2 * len(FACTS), _file, "/v1/files"),
    "max_schedules": (
        2,
        lambda tenant, i: tenant.post(
            "/v1/health_check_schedules", json={"lineage": "bot", "cron": f"{i} 3 * * *"}
        ),
        "/v1/health_check_schedules",
    ),
    "max_webhook_endpoints": (
        2,
        lambda tenant, i: tenant.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/hook{i}"}),
        "/v1/webhooks",
    ),
}


def test_every_quota_is_tested() -> None:
    assert set(QUOTAS) == {*CASES, "max_active_jobs", "max_active_health_checks"}


@pytest.mark.parametrize("quota", sorted(CASES))
def test_a_tenant_at_a_quota_gets_429_naming_it_and_nothing_is_written(
    quota: str, settings: Settings, api: TestClient, other_tenant: dict[str, str], model_path: str
) -> None:
    limit, make, listing = CASES[quota]
    settings.webhook_private_networks = True
    setattr(settings, quota, limit)
    acme, globex = Caller(api, {}, model_path), Caller(api, other_tenant, model_path)
    acme.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    for i in range(2):
        make(acme, i).raise_for_status()
    before = acme.listed(listing)

    refused = make(acme, 2)

    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert quota in error["message"] and f"NEUROPLAST_{quota.upper()}" in error["message"]
    assert acme.listed(listing) == before
    # Another tenant's quota is its own.
    globex.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    make(globex, 0).raise_for_status()


def test_a_refused_upload_leaves_no_file_on_disk(settings: Settings, api: TestClient) -> None:
    settings.max_file_bytes = len(FACTS)
    upload(api, FACTS)
    assert api.post("/v1/files", files={"file": ("f.jsonl", FACTS.encode())}).status_code == 429
    assert [path.name for path in (settings.files_dir / "acme").iterdir()] == [
        api.get("/v1/files").json()["data"][0]["id"] + ".jsonl"
    ]


def test_a_tenant_over_its_job_quota_gets_429_until_a_job_finishes(
    settings: Settings, api: TestClient, other_tenant: dict[str, str], model_path: str
) -> None:
    settings.max_active_jobs = 2
    training_file = upload(api, FACTS)["id"]
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": training_file}
    jobs = [api.post("/v1/fine_tuning/jobs", json=body).json()["id"] for _ in range(2)]

    refused = api.post("/v1/fine_tuning/jobs", json=body)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert "max_active_jobs" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert len(api.get("/v1/fine_tuning/jobs").json()["data"]) == 2
    # Another tenant's quota is its own.
    other_file = upload_as(api, other_tenant)
    api.post("/v1/lineages", headers=other_tenant, json={"name": "bot", "base_model": model_path})
    other = {"model": "bot", "training_file": other_file}
    assert api.post("/v1/fine_tuning/jobs", headers=other_tenant, json=other).status_code == 200
    # A finished job frees its slot.
    api.post(f"/v1/fine_tuning/jobs/{jobs[0]}/cancel").raise_for_status()
    assert api.post("/v1/fine_tuning/jobs", json=body).status_code == 200


def test_unfinished_health_checks_have_a_quota(
    settings: Settings, database: Database, api: TestClient, model_path: str
) -> None:
    settings.max_active_health_checks = 2
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    _promoted(database)
    for _ in range(2):
        api.post("/v1/health_checks", json={"lineage": "bot"}).raise_for_status()

    refused = api.post("/v1/health_checks", json={"lineage": "bot"})

    assert refused.status_code == 429 and "max_active_health_checks" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0


def test_the_gateway_rate_limit_answers_429_with_retry_after(
    settings: Settings, database: Database, other_tenant: dict[str, str]
) -> None:
    settings.gateway_requests_per_second, settings.gateway_burst = 1.0, 3
    with TestClient(create_app(settings)) as api:
        with database.session() as session:
            api.headers["Authorization"] = f"Bearer {create_key(session, 'acme')}"
        _spend_and_refill(api, other_tenant)


def _spend_and_refill(api: TestClient, other_tenant: dict[str, str]) -> None:
    statuses = [api.get("/v1/models").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    refused = api.post("/v1/completions", json={"model": "bot", "prompt": "hi"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "1"
    assert api.get("/v1/models", headers=other_tenant).status_code == 200  # per tenant
    time.sleep(1.05)
    assert api.get("/v1/models").status_code == 200  # a token came back


def upload_as(api: TestClient, headers: dict[str, str]) -> str:
    files = {"file": ("train.jsonl", FACTS.encode())}
    return str(api.post("/v1/files", headers=headers, files=files).json()["id"])
