"""Per-tenant quotas: unfinished jobs and the gateway's request rate, both 429 with retry-after."""

import time

from fastapi.testclient import TestClient

from service.db import Database
from service.main import create_app
from service.services.keys import create_key
from service.settings import Settings
from tests.service.conftest import FACTS, upload


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
    assert refused.json()["error"]["code"] == "too_many_jobs"
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
