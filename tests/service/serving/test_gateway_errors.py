"""The gateway's answers when a replica fails: a 503 to retry that never names the replica."""

import time

import httpx
import pytest

from service.db import Database
from service.main import create_app
from service.settings import Settings
from tests.service.serving.conftest import publish_bot, tenant_key, wait_serving
from tests.service.serving.fake_vllm import fake_vllm, running


def test_a_replica_that_stops_answering_is_a_503_without_its_address(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings.reconcile_seconds, settings.gateway_requests_per_second = 0.05, 10_000.0
    backend = running(fake_vllm())
    backend_url = backend.__enter__()
    settings.vllm_urls = [backend_url]
    with running(create_app(settings)) as url:
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tenant_key(database)}"})
        publish_bot(api, database)
        wait_serving(api, "bot", 2)
        settings.reconcile_seconds = 60  # the replica stays marked ready until a request fails
        time.sleep(0.3)
        backend.__exit__(None, None, None)

        answer = api.post("/v1/completions", json={"model": "bot", "prompt": "x"})

    assert answer.status_code == 503
    assert answer.headers["retry-after"]
    assert answer.json()["error"]["code"] == "not_ready"
    assert backend_url.removeprefix("http://") not in answer.text
    assert backend_url in caplog.text  # the operator still learns which replica failed
