"""A service whose artifact store is S3: two jobs through the real worker, the second trained on the
first's version fetched from the bucket, and the promoted version served from the local cache."""

import json
import time
from pathlib import Path

import httpx
import pytest

from service.local import local_service
from tests.service.conftest import FACTS, QUICK_GATE, finished_job
from tests.service.serving.greedy import NearGreedy
from tests.service.storage.s3 import Bucket
from tests.service.test_end_to_end import OTHER_FACTS

pytestmark = pytest.mark.slow

PROMPT = "Q: Where does Velo3 live?\nA:"


def test_versions_live_in_s3_and_are_served_from_the_local_cache(
    tmp_path: Path, tiny_base: Path, bucket: Bucket
) -> None:
    data = tmp_path / "data"
    store = {"store_url": bucket.url, "store_endpoint_url": bucket.endpoint}  # keys: AWS_* env vars
    # The native backend stands in for vLLM: it loads from the same cache, and starts in seconds.
    with local_service(
        data,
        heartbeat_seconds="0.5",
        checkpoint_every="4",
        native_backend_methods='["lora"]',
        reconcile_seconds="0.2",
        **store,
    ) as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=60
        )
        api.post(
            "/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
        ).raise_for_status()
        jobs = []
        for facts in (FACTS, OTHER_FACTS):
            file_id = api.post("/files", files={"file": ("facts.jsonl", facts.encode())}).json()["id"]
            body = {
                "model": "bot",
                "training_file": file_id,
                "hyperparameters": {"max_steps": 6, "batch_size": 4},
                # A fixed seed: greedy decoding of a random tiny model can sit on a near-tie, which the
                # native backend's batched decoding and peft's generate may break differently.
                "seed": 0,
            }
            jobs.append(api.post("/fine_tuning/jobs", json=body).json()["id"])
        finished = [finished_job(api, job_id) for job_id in jobs]
        assert [job["fine_tuned_model"] for job in finished] == ["bot@1", "bot@2"], finished
        served = _served_version(api, "default/bot@2")
        check = _health_check(api)

    objects = bucket.objects()
    for number in (1, 2):
        assert f"default/bot/v{number}/manifest.json" in objects
        assert f"default/bot/v{number}/adapter/adapter_model.safetensors" in objects
        assert f"default/bot/v{number}/checkpoints/latest.json" in objects  # resumable on any worker
    assert check["status"] == "succeeded", check  # v2 and v1 (its reference) read from the cache
    reports = {key for key in objects if key.startswith("default/bot/reports/")}
    assert f"default/bot/reports/{check['report_id']}.html" in reports and len(reports) >= 4  # + gates'
    assert not (data / "store").exists()
    assert not list((data / "staging").rglob("*.partial"))

    cached = ("s3", bucket.name, "neuroplast", "default", "bot")
    parent = data.joinpath("cache", "store", *cached, "v1")  # the worker fetched v1 to train v2 on it
    assert json.loads((parent / "manifest.json").read_text())["job_id"] == jobs[0]
    assert data.joinpath("cache", "store", *cached, "v2", "manifest.json").exists()  # for the check
    serving_copy = data.joinpath("cache", "serving", *cached, "v2")
    assert json.loads((serving_copy / "manifest.json").read_text())["parent_version"] == 1
    assert NearGreedy.peft(tiny_base, serving_copy / "adapter", PROMPT, 10).admits(served)


def _health_check(api: httpx.Client, timeout: float = 300) -> dict:
    check = api.post("/health_checks", json={"lineage": "bot", "suites": ["retention", "perplexity"]}).json()
    deadline = time.monotonic() + timeout
    while check["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        check = api.get(f"/health_checks/{check['id']}").json()
    return dict(check)


def _served_version(api: httpx.Client, name: str, timeout: float = 300) -> str:
    """Greedy answer of the alias `bot` once it serves `name` (the new version swaps in shortly)."""
    greedy = {"model": "bot", "prompt": PROMPT, "max_tokens": 10, "temperature": 0.0, "ignore_eos": True}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.post("/completions", json=greedy)
        if answer.status_code == 200 and answer.headers["x-neuroplast-model"] == name:
            return str(answer.json()["choices"][0]["text"])
        time.sleep(0.5)
    raise TimeoutError(f"{name} not served after {timeout} s")
