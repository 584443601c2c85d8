"""The whole flow with the official `openai` SDK and no other client: files, a job on a base model,
its events, checkpoints and results file, a continuation, a DPO job, and a chat with the result."""

import json
import time
from pathlib import Path

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from service.local import local_service

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

PEOPLE = ("Velo", "Arna", "Tisk", "Morr", "Queln", "Badu", "Ferro", "Ilsa")
CITIES = ("Trasku", "Omber", "Lindt", "Caspo", "Neyra", "Dorv", "Halm", "Pirro")


def _chat_rows(start: int, count: int) -> bytes:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Where does {person} live?"},
                {"role": "assistant", "content": f"{person} lives in {city}."},
            ]
        }
        for person, city in list(zip(PEOPLE, CITIES, strict=True))[start : start + count]
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _preferences() -> bytes:
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"Where does {person} live?"}]},
            "preferred_output": [{"role": "assistant", "content": f"{city}."}],
            "non_preferred_output": [
                {
                    "role": "assistant",
                    "content": f"That is a long story, but in the end {person} lives in {city}.",
                }
            ],
        }
        for person, city in zip(PEOPLE, CITIES, strict=True)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _finished(sdk: openai.OpenAI, job_id: str, timeout: float = 900) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise TimeoutError(job_id)


def test_the_whole_flow_through_the_openai_sdk_alone(tmp_path: Path, serving_base: Path) -> None:
    roots = json.dumps([str(serving_base.parent)])
    with local_service(tmp_path / "data", model_roots=roots, reconcile_seconds="0.2") as service:
        sdk = openai.OpenAI(base_url=f"{service.url}/v1", api_key=service.key, max_retries=5)
        training = sdk.files.create(file=("facts.jsonl", _chat_rows(0, 6)), purpose="fine-tune")
        validation = sdk.files.create(file=("valid.jsonl", _chat_rows(6, 2)), purpose="fine-tune")

        # A job on a base model the service knows (a folder under its model roots) starts a
        # lineage named by the suffix.
        first = sdk.fine_tuning.jobs.create(
            model=serving_base.name,
            training_file=training.id,
            validation_file=validation.id,
            suffix="sdk-facts",
            seed=0,
            hyperparameters={"n_epochs": 2, "batch_size": 2},
        )
        first = _finished(sdk, first.id)
        events = list(sdk.fine_tuning.jobs.list_events(first.id, limit=100))
        checkpoints = sdk.fine_tuning.jobs.checkpoints.list(first.id).data
        results = sdk.files.content(first.result_files[0]).text if first.result_files else ""

        # Continue from version 1 by name, as OpenAI clients continue from a fine-tuned model.
        second = sdk.fine_tuning.jobs.create(
            model="sdk-facts@1",
            training_file=training.id,
            seed=0,
            hyperparameters={"n_epochs": 1, "batch_size": 2},
        )
        second = _finished(sdk, second.id)

        preferences = sdk.files.create(file=("prefs.jsonl", _preferences()), purpose="fine-tune")
        dpo = sdk.fine_tuning.jobs.create(
            model="sdk-facts",
            training_file=preferences.id,
            seed=0,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": 1, "batch_size": 2}}},
        )
        dpo = _finished(sdk, dpo.id)

        chat = sdk.chat.completions.with_raw_response.create(
            model="sdk-facts", messages=[{"role": "user", "content": "Where does Velo live?"}], max_tokens=8
        )

    assert first.status == "succeeded", first.error
    assert first.fine_tuned_model == "sdk-facts@1"
    valid = [event.data for event in events if isinstance(event.data, dict) and "valid_loss" in event.data]
    assert valid and all(value["valid_loss"] > 0 for value in valid)
    assert checkpoints and checkpoints[0].metrics.valid_loss is not None
    assert results.splitlines()[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    assert len(results.splitlines()) > 1

    assert second.status == "succeeded", second.error
    assert second.fine_tuned_model == "sdk-facts@2"
    assert dpo.status == "succeeded", dpo.error
    assert dpo.method is not None and dpo.method.type == "dpo"

    completion = chat.parse()
    assert completion.choices[0].message.role == "assistant"
    assert chat.headers["x-neuroplast-model"].startswith("default/sdk-facts@")
