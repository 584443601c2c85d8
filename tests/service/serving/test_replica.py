"""The replica client against a fake vLLM that demands a key, as vLLM started with `--api-key` does."""

import asyncio

import httpx
import pytest

from service.serving.replica import Replica, ReplicaError
from tests.service.serving.fake_vllm import BASE, fake_vllm, running


def test_every_call_to_a_replica_carries_its_key() -> None:
    async def use(replica: Replica) -> tuple[set[str], int]:
        try:
            await replica.load("acme/bot@1", "/store/acme/bot/v1/adapter")
            await replica.warm_up("acme/bot@1")
            answer = await replica.send_completion("/v1/completions", b'{"model": "acme/bot@1"}')
            answer.release()
            return await replica.loaded(), answer.status
        finally:
            await replica.close()

    async def refused(replica: Replica) -> None:
        try:
            await replica.load("acme/bot@2", "/store/acme/bot/v2/adapter")
        finally:
            await replica.close()

    with running(fake_vllm(api_key="replica-key")) as url:
        loaded, status = asyncio.run(use(Replica(url, BASE, api_key="replica-key")))
        with pytest.raises(ReplicaError, match="Unauthorized"):
            asyncio.run(refused(Replica(url, BASE)))
        unauthenticated = httpx.get(f"{url}/v1/models")

    assert (loaded, status) == ({"acme/bot@1"}, 200)
    assert unauthenticated.status_code == 401  # the fake checks what the test claims
