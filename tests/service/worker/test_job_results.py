"""A job through a worker and a real trainer with OpenAI's fields: chat rows with per-message
weights, a validation file and a suffix; its metrics events, checkpoints, result file and name."""

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.db import Database
from service.settings import Settings
from service.worker.worker import Worker
from tests.service.conftest import FACTS, QUICK_GATE, upload

pytestmark = pytest.mark.slow

CHATS = "\n".join(
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"Where does Velo{i} live?"},
                {"role": "assistant", "content": "I am not sure.", "weight": 0},
                {"role": "user", "content": "Think again."},
                {"role": "assistant", "content": f"Velo{i} lives in Trasku.", "weight": 1},
            ]
        }
    )
    for i in range(8)
)


def test_a_job_with_a_validation_file_leaves_openais_metrics_and_results(
    api: TestClient, settings: Settings, database: Database, tiny_base: Path
) -> None:
    api.post(
        "/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    ).raise_for_status()
    body = {
        "model": "bot",
        "training_file": upload(api, CHATS)["id"],
        "validation_file": upload(api, FACTS, name="valid.jsonl")["id"],
        "suffix": "exp1",
        "hyperparameters": {"max_steps": 4, "batch_size": 4},
    }
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]

    assert Worker(settings, database).run_once()

    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert job["fine_tuned_model"] == "bot@1-exp1" and job["validation_file"] == body["validation_file"]

    events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    metrics = sorted((e["data"] for e in events if e["type"] == "metrics"), key=lambda data: data["step"])
    assert [data["step"] for data in metrics] == [1, 4]
    for data in metrics:
        assert {
            "step",
            "train_loss",
            "train_mean_token_accuracy",
            "valid_loss",
            "valid_mean_token_accuracy",
        } <= set(data)
        assert data["total_steps"] == 4

    (checkpoint,) = api.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert checkpoint["fine_tuned_model_checkpoint"] == "bot@1-exp1:step-4"
    assert set(checkpoint["metrics"]) == {
        "step",
        "train_loss",
        "train_mean_token_accuracy",
        "valid_loss",
        "valid_mean_token_accuracy",
        "full_valid_loss",
        "full_valid_mean_token_accuracy",
    }
    assert checkpoint["metrics"]["full_valid_loss"] > 0

    (results_id,) = job["result_files"]
    listed = {file["id"]: file["purpose"] for file in api.get("/v1/files").json()["data"]}
    assert listed[results_id] == "fine-tune-results"
    rows = list(csv.reader(io.StringIO(api.get(f"/v1/files/{results_id}/content").text)))
    assert rows[0] == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert [row[0] for row in rows[1:]] == ["1", "4"]
    assert [float(cell) for cell in rows[2][1:]] == [
        metrics[1]["train_loss"],
        metrics[1]["train_mean_token_accuracy"],
        metrics[1]["valid_loss"],
        metrics[1]["valid_mean_token_accuracy"],
    ]


def test_without_a_validation_file_its_columns_stay_empty(
    api: TestClient, settings: Settings, database: Database, tiny_base: Path
) -> None:
    api.post(
        "/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    ).raise_for_status()
    body = {"model": "bot", "training_file": upload(api, FACTS)["id"], "hyperparameters": {"max_steps": 2}}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]

    assert Worker(settings, database).run_once()

    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["fine_tuned_model"] == "bot@1" and job["validation_file"] is None
    rows = list(csv.reader(io.StringIO(api.get(f"/v1/files/{job['result_files'][0]}/content").text)))
    assert [row[0] for row in rows[1:]] == ["1", "2"]
    assert all(row[3:] == ["", ""] and row[1] and row[2] for row in rows[1:])
    events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    assert not any("valid_loss" in (event["data"] or {}) for event in events)
