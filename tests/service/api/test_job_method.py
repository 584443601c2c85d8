"""A job's `method` (OpenAI's training objective: supervised or dpo) and preference files over REST."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import FACTS, upload

REPO = Path(__file__).resolve().parents[3]
PAIRS = (REPO / "examples" / "preferences-concise.jsonl").read_text()
PAIR = json.loads(PAIRS.splitlines()[0])


@pytest.fixture
def pairs_file(api: TestClient) -> str:
    return upload(api, PAIRS, "pairs.jsonl")["id"]


def _create(api: TestClient, **body: object) -> dict:
    response = api.post("/v1/fine_tuning/jobs", json={"model": "bot", **body})
    return {"http_status": response.status_code, **response.json()}


def test_a_dpo_job_returns_its_method_as_openai_does(api: TestClient, lineage: str, pairs_file: str) -> None:
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2}}}

    job = _create(api, training_file=pairs_file, method=method)

    assert job["http_status"] == 200, job
    assert job["method"] == {
        "type": "dpo",
        "dpo": {
            "hyperparameters": {
                "n_epochs": 2,
                "batch_size": 8,
                "learning_rate_multiplier": 1.0,
                "max_steps": None,
                "beta": 0.2,
            }
        },
    }
    assert job["hyperparameters"]["n_epochs"] == 2  # the deprecated top-level copy, without beta
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["method"] == job["method"]


def test_beta_auto_and_a_job_without_a_method(
    api: TestClient, lineage: str, pairs_file: str, model_path: str
) -> None:
    dpo = _create(api, training_file=pairs_file, method={"type": "dpo"})
    assert dpo["method"]["dpo"]["hyperparameters"]["beta"] == 0.1

    supervised = _create(api, training_file=upload(api, FACTS)["id"], hyperparameters={"n_epochs": 4})
    assert supervised["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": supervised["hyperparameters"]},
    }
    assert supervised["hyperparameters"]["n_epochs"] == 4


def test_the_two_places_of_a_hyperparameter_must_agree(
    api: TestClient, lineage: str, pairs_file: str
) -> None:
    agreeing = _create(
        api,
        training_file=pairs_file,
        hyperparameters={"n_epochs": 5, "batch_size": "auto"},
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 5, "batch_size": 4}}},
    )
    assert agreeing["http_status"] == 200, agreeing
    assert (agreeing["hyperparameters"]["n_epochs"], agreeing["hyperparameters"]["batch_size"]) == (5, 4)

    clash = _create(
        api,
        training_file=pairs_file,
        hyperparameters={"n_epochs": 5},
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 6}}},
    )
    assert clash["http_status"] == 400
    assert clash["error"]["param"] == "method.dpo.hyperparameters.n_epochs"
    assert "hyperparameters.n_epochs is 5" in clash["error"]["message"]


@pytest.mark.parametrize(
    ("method", "param"),
    [
        ({"type": "ppo"}, "method.type"),
        ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}, "method.dpo.hyperparameters.beta"),
        ({"type": "dpo", "dpo": {"hyperparameters": {"beta": "high"}}}, "method.dpo.hyperparameters.beta"),
        ({"type": "dpo", "dpo": {"hyperparameters": {"gamma": 1}}}, "method.dpo.hyperparameters.gamma"),
        ({"type": "dpo", "supervised": {}}, "method"),
        (
            {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}},
            "method.supervised.hyperparameters.beta",
        ),
    ],
)
def test_a_bad_method_names_the_field(
    api: TestClient, lineage: str, pairs_file: str, method: dict, param: str
) -> None:
    job = _create(api, training_file=pairs_file, method=method)
    assert job["http_status"] == 400, job
    assert job["error"]["param"] == param
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_a_dpo_job_on_a_supervised_file_names_the_line(api: TestClient, lineage: str) -> None:
    mixed = PAIRS + FACTS.splitlines()[0] + "\n"
    file_id = upload(api, mixed)["id"]

    job = _create(api, training_file=file_id, method={"type": "dpo"})

    assert job["http_status"] == 400 and job["error"]["param"] == "training_file"
    assert job["error"]["code"] == "invalid_file_format"
    assert "line 9:" in job["error"]["message"] and "preference pairs" in job["error"]["message"]


def test_a_supervised_job_on_a_preference_file_is_refused(
    api: TestClient, lineage: str, pairs_file: str
) -> None:
    for body in ({}, {"method": {"type": "supervised"}}):
        job = _create(api, training_file=pairs_file, **body)
        assert job["http_status"] == 400 and job["error"]["param"] == "training_file"
        assert "line 1:" in job["error"]["message"] and '"type": "dpo"' in job["error"]["message"]


def test_a_dpo_job_validates_on_a_file_of_pairs(api: TestClient, lineage: str, pairs_file: str) -> None:
    validation = upload(api, "\n".join(PAIRS.splitlines()[:3]) + "\n", "valid.jsonl")["id"]

    job = _create(api, training_file=pairs_file, validation_file=validation, method={"type": "dpo"})

    assert job["http_status"] == 200, job
    assert job["validation_file"] == validation
    events = api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert "Validated validation file: 3 rows." in [event["message"] for event in events]


def test_a_dpo_jobs_validation_file_of_chat_rows_is_a_400_naming_the_line(
    api: TestClient, lineage: str, pairs_file: str
) -> None:
    chat = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hi."}]}
    )
    validation = upload(api, PAIRS.splitlines()[0] + "\n" + chat + "\n", "valid.jsonl")["id"]

    job = _create(api, training_file=pairs_file, validation_file=validation, method={"type": "dpo"})

    assert job["http_status"] == 400 and job["error"]["param"] == "validation_file"
    assert job["error"]["code"] == "invalid_file_format"
    assert f"File '{validation}'" in job["error"]["message"] and "line 2:" in job["error"]["message"]
    assert "preference pairs" in job["error"]["message"]
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_a_supervised_jobs_validation_file_of_pairs_is_a_400(
    api: TestClient, lineage: str, pairs_file: str
) -> None:
    job = _create(api, training_file=upload(api, FACTS)["id"], validation_file=pairs_file)

    assert job["http_status"] == 400 and job["error"]["param"] == "validation_file"
    assert "line 1:" in job["error"]["message"] and '"type": "dpo"' in job["error"]["message"]


def test_a_trc_lineage_refuses_dpo(api: TestClient, model_path: str, pairs_file: str) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path, "method": {"type": "trc"}})

    job = _create(api, training_file=pairs_file, method={"type": "dpo"})

    assert job["http_status"] == 400 and job["error"]["param"] == "method"
    assert "hippocampal store" in job["error"]["message"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"input": {"messages": []}}, "line 2: 'input.messages' must be a non-empty list"),
        ({"input": {"prompt": "hi"}}, "line 2: 'input' must be an object with exactly 'messages'"),
        (
            {"preferred_output": [{"role": "user", "content": "x"}]},
            "line 2: preferred_output[0].role must be 'assistant'",
        ),
        (
            {"non_preferred_output": "no"},
            "line 2: 'non_preferred_output' must be a list of one assistant message",
        ),
        (
            {"non_preferred_output": PAIR["preferred_output"]},
            "line 2: 'preferred_output' and 'non_preferred_output' are the same",
        ),
        ({"preferred_output": [{"role": "assistant"}]}, "line 2: preferred_output[0] must be an object"),
    ],
)
def test_a_bad_preference_row_is_refused_on_upload_by_line(
    api: TestClient, change: dict, problem: str
) -> None:
    content = json.dumps(PAIR) + "\n" + json.dumps({**PAIR, **change}) + "\n"

    body = upload(api, content)

    assert body["error"]["param"] == "file" and problem in body["error"]["message"], body
