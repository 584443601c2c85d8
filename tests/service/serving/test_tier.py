"""What one tenant can make the serving tier hold, against a fake vLLM: pinned versions are
unloaded once idle (never under a request), a server no version needs is stopped, and a version
that cannot be loaded is a 503 to retry that names nothing internal."""

import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.main import create_app
from service.models import Job, Lineage
from service.serving.supervisor import Supervisor
from service.settings import Settings
from tests.service.conftest import wait_for
from tests.service.serving.conftest import publish, publish_bot, tenant_key, wait_serving
from tests.service.serving.fake_vllm import BASE, fake_vllm, running
from trainers.contracts.statuses import JobStatus


@pytest.fixture
def fast(settings: Settings) -> Settings:
    settings.reconcile_seconds = 0.05
    settings.gateway_requests_per_second = 10_000.0
    return settings


def test_external_replicas_that_demand_the_key_are_served(fast: Settings, database: Database) -> None:
    fast.vllm_api_key = "replica-key"
    with running(fake_vllm(api_key="replica-key")) as backend_url:
        fast.vllm_urls = [backend_url]
        with TestClient(create_app(fast)) as api:
            api.headers["Authorization"] = f"Bearer {tenant_key(database)}"
            publish_bot(api, database)
            wait_serving(api, "bot", 2)
            answer = api.post("/v1/completions", json={"model": "bot@1", "prompt": "x"})

    assert answer.status_code == 200 and answer.headers["x-neuroplast-model"] == "acme/bot@1"


def test_a_version_answers_to_its_name_with_its_jobs_suffix(fast: Settings, database: Database) -> None:
    with running(fake_vllm()) as backend_url:
        fast.vllm_urls = [backend_url]
        with TestClient(create_app(fast)) as api:
            api.headers["Authorization"] = f"Bearer {tenant_key(database)}"
            publish_bot(api, database)
            _trained_by(database, "ftjob-1", suffix="support")  # v1's job
            wait_serving(api, "bot", 2)
            answers = {
                model: api.post("/v1/completions", json={"model": model, "prompt": "x"})
                for model in ("bot@1-support", "bot@1", "bot@1-sales", "bot@2-support", "bot@3-support")
            }

    assert {model: answer.status_code for model, answer in answers.items()} == {
        "bot@1-support": 200,
        "bot@1": 200,
        "bot@1-sales": 404,
        "bot@2-support": 404,  # v2's job had no suffix
        "bot@3-support": 404,
    }
    assert answers["bot@1-support"].headers["x-neuroplast-model"] == "acme/bot@1"
    assert answers["bot@1-sales"].json()["error"]["code"] == "model_not_found"


def _trained_by(database: Database, job_id: str, suffix: str) -> None:
    """The job row that trained a version `publish` wrote, with its `suffix`."""
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bot")).one()
        session.add(
            Job(
                id=job_id,
                tenant_pk=lineage.tenant_pk,
                lineage_pk=lineage.pk,
                training_file="file-x",
                status=JobStatus.SUCCEEDED,
                hyperparameters={},
                seed=0,
                suffix=suffix,
            )
        )


def test_an_idle_pinned_version_is_unloaded_but_never_while_a_request_uses_it(
    fast: Settings, database: Database
) -> None:
    fast.pin_idle_seconds = 0.3
    backend = fake_vllm(words=40, delay=0.03)  # a stream of about 1.2 s
    with running(backend) as backend_url:
        fast.vllm_urls = [backend_url]
        with running(create_app(fast)) as url:
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tenant_key(database)}"})
            publish_bot(api, database)
            wait_serving(api, "bot", 2)
            during: list[set[str]] = []
            with api.stream("POST", "/v1/completions", json={"model": "bot@1", "stream": True}) as answer:
                lines = answer.iter_lines()
                next(lines)
                time.sleep(0.6)  # idle for longer than pin_idle_seconds, but in use
                during.append(set(backend.state.adapters))
                rest = [line for line in lines if line.startswith("data: ")]
            wait_for(
                lambda: "acme/bot@1" not in backend.state.adapters, "bot@1 unloaded", timeout=5, tick=0.02
            )
            listed = {model["id"] for model in api.get("/v1/models").json()["data"]}
            again = api.post("/v1/completions", json={"model": "bot@1", "prompt": "x"})

    assert during == [{"acme/bot@1", "acme/bot@2"}]
    assert rest[-1] == "data: [DONE]"
    assert listed == {"bot", "bot@2"}
    assert again.status_code == 200 and again.headers["x-neuroplast-model"] == "acme/bot@1"


def test_a_pinned_version_that_cannot_be_loaded_is_a_503_to_retry(fast: Settings, database: Database) -> None:
    backend = fake_vllm()
    backend.state.refused.add("acme/bot@1")
    with running(backend) as backend_url:
        fast.vllm_urls = [backend_url]
        with TestClient(create_app(fast)) as api:
            api.headers["Authorization"] = f"Bearer {tenant_key(database)}"
            publish_bot(api, database)
            wait_serving(api, "bot", 2)

            answer = api.post("/v1/completions", json={"model": "bot@1", "prompt": "x"})
            backend.state.refused.clear()
            retried = api.post("/v1/completions", json={"model": "bot@1", "prompt": "x"})

    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("not_ready", "model")
    assert "bot@1" in error["message"]
    assert backend_url.removeprefix("http://") not in answer.text and "/store" not in answer.text
    assert retried.status_code == 200


def test_a_supervised_server_that_no_version_needs_is_stopped(
    fast: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pin on a base model no lineage serves starts a server; nothing needs it afterwards."""
    monkeypatch.setattr(
        Supervisor, "command", lambda self: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    fast.server_idle_seconds = 1.0
    with TestClient(create_app(fast)) as api:
        api.headers["Authorization"] = f"Bearer {tenant_key(database)}"
        api.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
        publish(database, "acme", "bot", 1, "/store/acme/bot/v1", promote=False)
        tier = api.app.state.serving  # type: ignore[attr-defined]

        answer = api.post("/v1/completions", json={"model": "bot@1", "prompt": "x"})
        (supervisor,) = tier.supervisors.values()
        time.sleep(0.3)
        kept_for_a_while = bool(tier.supervisors)
        wait_for(
            lambda: not tier.supervisors and supervisor.process.poll() is not None,
            "the idle supervisor to stop",
            timeout=5,
            tick=0.02,
        )

    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert BASE not in answer.json()["error"]["message"]  # a base model may be a path on the server
    assert kept_for_a_while
