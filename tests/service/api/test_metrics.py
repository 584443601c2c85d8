"""`GET /metrics`: who may read it, and that a scrape counts what a user did (queue, jobs, gateway)."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.db import Database
from service.main import create_app
from service.services.keys import create_key
from service.settings import Settings
from service.worker.lease import JobQueue
from service.worker.worker import Worker
from tests.service.conftest import FACTS, QUICK_GATE, upload
from tests.service.serving import fake_vllm as fake
from tests.service.serving.conftest import publish, wait_serving

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, key: str) -> Samples:
    """Every sample of one scrape, keyed by name and labels (parsed as Prometheus would)."""
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def admin_key(database: Database) -> str:
    with database.session() as session:
        return create_key(session, "ops", scope="platform")


def test_metrics_are_for_platform_keys_and_the_metrics_token(
    settings: Settings, database: Database, api: TestClient
) -> None:
    assert api.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert api.get("/metrics", headers={"Authorization": "Bearer np_x_y"}).status_code == 401
    member = api.get("/metrics")  # the fixture's key: a member of tenant acme
    assert member.status_code == 403 and member.json()["error"]["code"] == "insufficient_scope"
    with database.session() as session:
        tenant_admin = create_key(session, "acme", scope="admin")
    assert api.get("/metrics", headers={"Authorization": f"Bearer {tenant_admin}"}).status_code == 403
    scrape(api, admin_key(database))

    settings.metrics_token = "scrape-secret"
    with TestClient(create_app(settings)) as client:
        scrape(client, "scrape-secret")
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secre"}).status_code == 401


def test_a_scrape_shows_the_queue_as_jobs_are_created_and_claimed(
    settings: Settings, database: Database, api: TestClient, model_path: str
) -> None:
    key = admin_key(database)
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"]}
    for _ in range(2):
        api.post("/v1/fine_tuning/jobs", json=body).raise_for_status()

    queued = scrape(api, key)
    assert value(queued, "neuroplast_jobs", status="queued") == 2
    assert value(queued, "neuroplast_jobs", status="succeeded") == 0  # known statuses show at zero
    assert value(queued, "neuroplast_queue_depth", kind="job") == 2
    assert value(queued, "neuroplast_queue_oldest_age_seconds", kind="job") >= 0
    assert value(queued, "neuroplast_queue_wait_seconds_count", kind="job") == 0

    time.sleep(2.05)  # created_at and started_at are whole seconds: the wait is at least 2
    assert JobQueue(database, settings).claim("worker-1") is not None

    claimed = scrape(api, key)
    assert value(claimed, "neuroplast_jobs", status="queued") == 1
    assert value(claimed, "neuroplast_jobs", status="running") == 1
    assert value(claimed, "neuroplast_queue_depth", kind="job") == 1
    assert value(claimed, "neuroplast_queue_wait_seconds_count", kind="job") == 1
    assert value(claimed, "neuroplast_queue_wait_seconds_sum", kind="job") >= 2
    assert value(claimed, "neuroplast_queue_wait_seconds_bucket", kind="job", le="1.0") == 0
    assert value(claimed, "neuroplast_queue_wait_seconds_bucket", kind="job", le="+Inf") == 1


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch, tiny_base: Path) -> Iterator[dict[str, str]]:
    """A fake vLLM serving the tiny base (so a lineage trained on it is routed there); its adapters."""
    monkeypatch.setattr(fake, "BASE", str(tiny_base))
    app = fake.fake_vllm()
    with fake.running(app) as url:
        app.state.url = url
        yield app


@pytest.fixture
def gateway(settings: Settings, database: Database, backend) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The API of tenant 'acme' attached to the fake vLLM."""
    settings.vllm_urls, settings.reconcile_seconds = [backend.state.url], 0.05
    with TestClient(create_app(settings)) as client:
        with database.session() as session:
            client.headers["Authorization"] = f"Bearer {create_key(session, 'acme')}"
        yield client


def test_gateway_requests_are_counted_per_served_version(
    gateway: TestClient, database: Database, tiny_base: Path
) -> None:
    key = admin_key(database)
    gateway.post("/v1/lineages", json={"name": "bot", "base_model": str(tiny_base)}).raise_for_status()
    publish(database, "acme", "bot", 1, "/store/acme/bot/v1")
    wait_serving(gateway, "bot", 1)

    assert gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi"}).status_code == 200
    streamed = gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi", "stream": True})
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    unknown = gateway.post("/v1/completions", json={"model": "no-such-model-123", "prompt": "hi"})
    assert unknown.status_code == 404

    samples = scrape(gateway, key)
    served = {"tenant": "acme", "lineage": "bot", "version": "1", "code": "200"}
    assert value(samples, "neuroplast_gateway_request_duration_seconds_count", **served) == 2
    assert value(samples, "neuroplast_gateway_request_duration_seconds_sum", **served) > 0
    unrouted = {"tenant": "acme", "lineage": "", "version": "", "code": "404"}
    assert value(samples, "neuroplast_gateway_request_duration_seconds_count", **unrouted) == 1
    assert "no-such-model-123" not in gateway.get("/metrics", headers={"Authorization": f"Bearer {key}"}).text
    assert value(samples, "neuroplast_swap_duration_seconds_count") == 1

    # Promoting v2 swaps it in and unloads v1: v1's series go with it, so versions do not pile up.
    publish(database, "acme", "bot", 2, "/store/acme/bot/v2")
    wait_serving(gateway, "bot", 2)
    gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi"}).raise_for_status()
    deadline = time.monotonic() + 10
    while value(scrape(gateway, key), "neuroplast_gateway_request_duration_seconds_count", **served):
        assert time.monotonic() < deadline, "v1's series outlived its unload"
        time.sleep(0.05)
    samples = scrape(gateway, key)
    assert (
        value(samples, "neuroplast_gateway_request_duration_seconds_count", **served | {"version": "2"}) == 1
    )
    assert value(samples, "neuroplast_swap_duration_seconds_count") == 2


@pytest.mark.slow
def test_after_a_job_runs_and_a_completion_is_served_the_scrape_counts_both(
    gateway: TestClient, settings: Settings, database: Database, tiny_base: Path
) -> None:
    key = admin_key(database)
    gateway.post(
        "/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    ).raise_for_status()
    body = {
        "model": "bot",
        "training_file": upload(gateway, FACTS)["id"],
        "hyperparameters": {"max_steps": 4, "batch_size": 4},
    }
    job_id = gateway.post("/v1/fine_tuning/jobs", json=body).json()["id"]

    assert Worker(settings, database).run_once()
    job = gateway.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    wait_serving(gateway, "bot", 1)
    gateway.post("/v1/completions", json={"model": "bot", "prompt": "Q:"}).raise_for_status()

    samples = scrape(gateway, key)
    assert value(samples, "neuroplast_jobs", status="succeeded") == 1
    assert value(samples, "neuroplast_jobs", status="queued") == 0
    assert value(samples, "neuroplast_queue_depth", kind="job") == 0
    assert value(samples, "neuroplast_queue_wait_seconds_count", kind="job") == 1
    assert value(samples, "neuroplast_job_duration_seconds_count", status="succeeded") == 1
    duration = value(samples, "neuroplast_job_duration_seconds_sum", status="succeeded")
    assert 0 <= duration <= job["finished_at"] - job["created_at"]
    assert value(samples, "neuroplast_trained_tokens_total", method="lora") == job["trained_tokens"] > 0
    assert value(samples, "neuroplast_training_seconds_total", method="lora") > 0
    assert value(samples, "neuroplast_versions", status="promoted") == 1
    verdicts = sum(
        value(samples, "neuroplast_health_reports_total", verdict=v) for v in ("ok", "warn", "rot")
    )
    assert verdicts == 1  # the gate's report
    served = {"tenant": "acme", "lineage": "bot", "version": "1", "code": "200"}
    assert value(samples, "neuroplast_gateway_request_duration_seconds_count", **served) == 1
