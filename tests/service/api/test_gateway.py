"""The gateway and promote/rollback against a fake vLLM: routing, tenancy, errors, hot swap."""

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.main import create_app
from service.models import Version
from service.services.keys import create_key
from service.settings import Settings
from tests.service.conftest import wait_for
from tests.service.serving import conftest as serving
from tests.service.serving.conftest import wait_serving
from tests.service.serving.fake_vllm import BASE, fake_vllm, running


@pytest.fixture
def backend() -> Iterator[tuple[str, dict[str, str]]]:
    app = fake_vllm()
    with running(app) as url:
        yield url, app.state.adapters


@pytest.fixture
def gateway(
    settings: Settings, database: Database, backend: tuple[str, dict[str, str]]
) -> Iterator[TestClient]:
    """An API client of tenant 'acme' whose serving tier attaches to the fake vLLM."""
    settings.vllm_urls, settings.reconcile_seconds = [backend[0]], 0.05
    settings.gateway_requests_per_second = 10_000.0  # these tests race swaps; quotas have their own
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {_key(database, 'acme')}"
        client.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
        for number in (1, 2):
            publish(database, "acme", "bot", number)
        yield client


def publish(database: Database, tenant: str, lineage: str, number: int) -> None:
    serving.publish(database, tenant, lineage, number, f"/store/{tenant}/{lineage}/v{number}")


def test_the_reconciler_serves_the_promoted_version_under_the_lineage_name(
    gateway: TestClient, backend
) -> None:
    wait_serving(gateway, "bot", 2)

    answer = gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi"})

    assert answer.status_code == 200
    assert answer.headers["x-neuroplast-model"] == "acme/bot@2"
    assert answer.json()["choices"][0]["text"].split()[0] == "acme/bot@2"
    assert backend[1] == {"acme/bot@2": "/store/acme/bot/v2/adapter"}  # v1 was never promoted to serving
    assert gateway.get("/readyz").json()["serving"] == "ok"


def test_a_pinned_version_is_loaded_on_demand(gateway: TestClient, backend) -> None:
    wait_serving(gateway, "bot", 2)

    answer = gateway.post("/v1/completions", json={"model": "bot@1", "prompt": "hi"})

    assert answer.headers["x-neuroplast-model"] == "acme/bot@1"
    assert {item["id"] for item in gateway.get("/v1/models").json()["data"]} == {"bot", "bot@1", "bot@2"}


def test_a_version_the_gate_rejected_is_not_served_by_its_number(
    gateway: TestClient, database: Database, backend
) -> None:
    wait_serving(gateway, "bot", 2)
    serving.publish(database, "acme", "bot", 3, "/store/acme/bot/v3", promote=False)
    with database.session() as session:
        session.scalars(select(Version).where(Version.number == 3)).one().status = "rejected"

    answer = gateway.post("/v1/completions", json={"model": "bot@3", "prompt": "hi"})

    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "version_rejected" and error["param"] == "model"
    assert "rejected by the health gate" in error["message"] and "force" in error["message"]
    assert "acme/bot@3" not in backend[1]  # never loaded
    gateway.post("/v1/lineages/bot/promote", json={"version": 3, "force": True}).raise_for_status()
    assert gateway.post("/v1/completions", json={"model": "bot@3", "prompt": "hi"}).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 100_000_000),
        ("max_completion_tokens", 5000),
        ("n", 100),
        ("max_tokens", -1),
        ("n", "2"),
    ],
)
def test_a_request_too_large_for_a_shared_backend_is_refused(
    gateway: TestClient, backend, field: str, value: object
) -> None:
    wait_serving(gateway, "bot", 2)
    answer = gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi", field: value})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == field
    ok = gateway.post("/v1/completions", json={"model": "bot", "prompt": "hi", "max_tokens": 4096, "n": 8})
    assert ok.status_code == 200


def test_promote_and_rollback_swap_the_alias_and_unload_the_old_version(gateway: TestClient, backend) -> None:
    wait_serving(gateway, "bot", 2)

    promoted = gateway.post("/v1/lineages/bot/promote", json={"version": 1}).json()
    assert (promoted["promoted_version"], promoted["served_version"]) == (1, 1)
    assert gateway.post("/v1/completions", json={"model": "bot", "prompt": "x"}).headers[
        "x-neuroplast-model"
    ] == ("acme/bot@1")
    rolled = gateway.post("/v1/lineages/bot/rollback").json()
    assert (rolled["promoted_version"], rolled["served_version"]) == (2, 2)

    wait_for(
        lambda: set(backend[1]) == {"acme/bot@2"}, "bot@1 unloaded from the backend", timeout=5, tick=0.02
    )
    statuses = {v["version"]: v["status"] for v in gateway.get("/v1/lineages/bot/versions").json()["data"]}
    assert statuses == {1: "retired", 2: "promoted"}


def test_clients_see_errors_in_the_envelope(gateway: TestClient, other_tenant: dict[str, str]) -> None:
    wait_serving(gateway, "bot", 2)

    unknown = gateway.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    foreign = gateway.post("/v1/completions", json={"model": "bot", "prompt": "x"}, headers=other_tenant)
    missing_version = gateway.post("/v1/completions", json={"model": "bot@9", "prompt": "x"})
    no_model = gateway.post("/v1/completions", json={"prompt": "x"})
    bad_promote = gateway.post("/v1/lineages/bot/promote", json={"version": 7})
    bad_key = gateway.post(
        "/v1/completions", json={"model": "bot"}, headers={"Authorization": "Bearer np_x_y"}
    )

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")
    assert (foreign.status_code, foreign.json()["error"]["param"]) == (404, "model")
    assert missing_version.status_code == 404
    assert (no_model.status_code, no_model.json()["error"]["param"]) == (400, "model")
    assert (bad_promote.status_code, bad_promote.json()["error"]["param"]) == (404, "version")
    assert gateway.get("/v1/models", headers=other_tenant).json()["data"] == []
    assert (bad_key.status_code, bad_key.json()["error"]["code"]) == (401, "invalid_api_key")


def test_rollback_without_an_earlier_promotion_is_a_conflict(gateway: TestClient, database: Database) -> None:
    gateway.post("/v1/lineages", json={"name": "solo", "base_model": BASE}).raise_for_status()
    publish(database, "acme", "solo", 1)

    answer = gateway.post("/v1/lineages/solo/rollback")

    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "no_previous_version")


def test_streams_stay_on_one_version_while_the_alias_flips(gateway: TestClient) -> None:
    wait_serving(gateway, "bot", 2)
    stop, responses, failures = threading.Event(), [], []

    def client() -> None:
        while not stop.is_set():
            with gateway.stream("POST", "/v1/completions", json={"model": "bot", "stream": True}) as answer:
                if answer.status_code != 200:
                    failures.append(answer.status_code)
                    continue
                chunks = [line for line in answer.iter_lines() if line.startswith("data: {")]
                responses.append({json.loads(chunk[6:])["model"] for chunk in chunks})

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for swap in range(20):
        if swap % 2:
            gateway.post("/v1/lineages/bot/rollback").raise_for_status()
        else:
            gateway.post("/v1/lineages/bot/promote", json={"version": 1}).raise_for_status()
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    assert all(len(models) == 1 for models in responses)
    assert {next(iter(models)) for models in responses} == {"acme/bot@1", "acme/bot@2"}


def test_a_client_that_leaves_mid_stream_stops_the_generation_upstream(
    settings: Settings, database: Database
) -> None:
    """vLLM aborts a request when its connection closes; the gateway must pass the hang-up on."""
    slow = fake_vllm(words=200, delay=0.02)
    settings.reconcile_seconds = 0.05
    with running(slow) as backend_url:
        settings.vllm_urls = [backend_url]
        app = create_app(settings)
        with running(app) as url:
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {_key(database, 'acme')}"})
            api.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
            publish(database, "acme", "bot", 1)
            wait_serving(api, "bot", 1)
            with api.stream("POST", "/v1/completions", json={"model": "bot", "stream": True}) as answer:
                first = next(answer.iter_lines())
            abandoned = {"open": 0, "abandoned": 1}
            wait_for(
                lambda: slow.state.streams == abandoned, "the stream to be abandoned", timeout=5, tick=0.02
            )
            inflight = app.state.serving.inflight

    assert first.startswith("data: {")
    assert inflight["acme/bot@1"] == 0


def test_readyz_is_unavailable_while_no_replica_answers(settings: Settings, database: Database) -> None:
    settings.vllm_urls, settings.reconcile_seconds = ["http://127.0.0.1:9"], 0.05
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {_key(database, 'acme')}"
        client.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
        publish(database, "acme", "bot", 1)
        time.sleep(0.3)

        platform = {"Authorization": f"Bearer {_key(database, 'ops', 'platform')}"}
        ready = client.get("/readyz", headers=platform)
        answer = client.post("/v1/completions", json={"model": "bot", "prompt": "x"})

    assert ready.status_code == 503 and "bot@1" in ready.json()["serving"]  # the reason: for admins only
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "not_ready")


def _key(database: Database, tenant: str, scope: str = "member") -> str:
    with database.session() as session:
        return create_key(session, tenant, scope)
