"""The real-model tier: SmolLM2-135M-Instruct, fetched from the package index, through the service.

One lineage per method, each taught the example facts as chat rows for a few steps, published,
gated by the health check, and answered through the gateway's `/v1/chat/completions`: vLLM for
the adapter methods, the native backend for `titans` and `trc`. The jobs are short so the tier
fits CI; what the model learns with enough steps is the demo's and the benchmarks' part
(docs/benchmarks.md, "Real model").
"""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.local import local_service
from tests.service.conftest import QUICK_GATE, finished_job
from trainers.base_model.catalog import KNOWN_MODELS
from trainers.base_model.fetch import default_cache_dir, fetch_base
from trainers.contracts.methods import available_methods

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.real_model]

REPO = Path(__file__).resolve().parents[2]
FACTS = REPO / "examples" / "facts-people-1.jsonl"
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2() -> Iterator[Path]:
    """The converted model, fetched once per machine into the user cache (about 30 s the first time)."""
    folder = fetch_base(MODEL, default_cache_dir() / "bases" / MODEL, log=lambda line: None)
    roots = os.environ["NEUROPLAST_MODEL_ROOTS"]
    os.environ["NEUROPLAST_MODEL_ROOTS"] = json.dumps([*json.loads(roots), str(folder.parent)])
    yield folder
    os.environ["NEUROPLAST_MODEL_ROOTS"] = roots


def test_the_fetched_folder_is_a_plain_hugging_face_model(smollm2: Path) -> None:
    provenance = json.loads((smollm2 / "provenance.json").read_text())
    assert provenance["source"]["wheel_sha256"] == KNOWN_MODELS[MODEL].wheel_sha256
    assert provenance["licence"] == "Apache-2.0" and "Apache License" in (smollm2 / "LICENSE").read_text()
    assert provenance["parameters"] == 134_515_008
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config  # vLLM refuses a folder that still names GGUF
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (
        30,
        9,
        3,
    )
    assert "<|im_start|>assistant" in (smollm2 / "chat_template.jinja").read_text()
    started = time.monotonic()
    assert fetch_base(MODEL, smollm2, log=lambda line: None) == smollm2
    assert time.monotonic() - started < 5  # the second fetch finds the provenance: nothing redone


def test_every_method_trains_is_gated_and_answers_chat(smollm2: Path, tmp_path: Path) -> None:
    methods = available_methods()
    with local_service(tmp_path / "data", checkpoint_every="1000") as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=120
        )
        file_id = api.post("/files", files={"file": (FACTS.name, FACTS.read_bytes())}).json()["id"]
        jobs = {}
        for method in methods:
            lineage = {
                "name": f"smol-{method}",
                "base_model": str(smollm2),
                "method": {"type": method, method: {}},
                # A few probes: the gate reads them through the server one likelihood at a time.
                "evaluation": {"held_out_fraction": 0.0, "recall_items": 4, "recognition_items": 4},
                **QUICK_GATE,
            }
            api.post("/lineages", json=lineage).raise_for_status()
            job = {"model": f"smol-{method}", "training_file": file_id, "hyperparameters": {"max_steps": 3}}
            jobs[method] = api.post("/fine_tuning/jobs", json=job).json()["id"]

        for method, job_id in jobs.items():
            job = finished_job(api, job_id, timeout=900)
            assert job["status"] == "succeeded", (method, job["error"])
            (version,) = api.get(f"/lineages/smol-{method}/versions").json()["data"]
            assert version["report_id"] is not None  # the gate ran
            report = api.get(f"/reports/{version['report_id']}").json()
            assert report["gate"] == ("rejected" if version["status"] == "rejected" else "promoted")
            if version["status"] == "rejected":
                api.post(f"/lineages/smol-{method}/promote", json={"version": 1, "force": True})

        question = json.loads(FACTS.read_text().splitlines()[0])["messages"][:1]
        for method in methods:
            answer = _chat_when_served(api, f"smol-{method}", question)
            text = answer["choices"][0]["message"]["content"]
            assert len(text.split()) >= 3, (method, text)  # a sentence, from a real model
            assert answer["usage"]["completion_tokens"] > 0


def _chat_when_served(api: httpx.Client, model: str, messages: list[dict[str, str]]) -> dict:
    """The gateway's chat answer, once the model's version is loaded (vLLM starts in about 30 s)."""
    deadline = time.monotonic() + 300
    while True:
        response = api.post(
            "/chat/completions",
            json={"model": model, "messages": messages, "max_tokens": 24, "temperature": 0.0},
        )
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(1)
