"""`/v1/fine_tuning/jobs`: creation (on a lineage or a base model), validation, paging, events,
cancel, pause and resume."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.service.conftest import FACTS, upload


@pytest.fixture
def training_file(api: TestClient) -> str:
    return upload(api, FACTS)["id"]


def test_create_queues_the_job(api: TestClient, lineage: str, training_file: str) -> None:
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": lineage,
            "training_file": training_file,
            "hyperparameters": {"n_epochs": 2},
            "seed": 7,
            "metadata": {"team": "a"},
        },
    ).json()
    assert job["object"] == "fine_tuning.job" and job["id"].startswith("ftjob-")
    assert job["status"] == "queued" and job["model"] == "bot" and job["fine_tuned_model"] is None
    assert job["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 8,
        "learning_rate_multiplier": 1.0,
        "max_steps": None,
    }
    assert job["seed"] == 7 and job["metadata"] == {"team": "a"} and job["organization_id"] == "acme"
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json() == job
    messages = [
        event["message"] for event in api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    ]
    assert messages == [
        "Job entered queue.",
        "Probes drawn: 8 recall, 8 recognition, 0 held-out rows (kept out of training).",
        "Validated training file: 8 rows.",
    ]


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "nope"}, 404, "model"),
        ({"training_file": "file-nope"}, 404, "training_file"),
        ({"hyperparameters": {"n_epochs": 0}}, 400, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": "many"}}, 400, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": 1.5}}, 400, "hyperparameters.batch_size"),
        (
            {"hyperparameters": {"learning_rate_multiplier": -1}},
            400,
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"hyperparameters": {"warp": 9}}, 400, "hyperparameters.warp"),
        ({"hyperparameters": {"max_steps": 0}}, 400, "hyperparameters.max_steps"),
        ({"seed": -3}, 400, "seed"),
        ({"validation_file": "file-x"}, 404, "validation_file"),
        ({"suffix": "my suffix"}, 400, "suffix"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, 400, "metadata"),
        ({"processes": 0}, 400, "processes"),
        ({"processes": 65}, 400, "processes"),
        ({"processes": "2"}, 400, "processes"),
        ({"processes": 2.0}, 400, "processes"),
        ({"processes": 3, "hyperparameters": {"batch_size": 2}}, 400, "processes"),
    ],
)
def test_bad_input_names_the_field(
    api: TestClient, lineage: str, training_file: str, change: dict, status: int, param: str
) -> None:
    response = api.post(
        "/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file, **change}
    )
    assert response.status_code == status, response.json()
    assert response.json()["error"]["param"] == param
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []


@pytest.mark.parametrize(
    ("change", "param", "names"),
    [
        ({"processes": 5, "hyperparameters": {"batch_size": 8}}, "processes", "NEUROPLAST_MAX_JOB_PROCESSES"),
        ({"hyperparameters": {"max_steps": 1001}}, "hyperparameters.max_steps", "1001"),
        # FACTS: 8 rows, none held out; batches of 1: 8 steps an epoch, 126 epochs = 1008 steps.
        ({"hyperparameters": {"n_epochs": 126, "batch_size": 1}}, "hyperparameters.n_epochs", "1008"),
    ],
)
def test_a_job_over_the_service_limits_is_refused(
    api: TestClient,
    settings: Settings,
    lineage: str,
    training_file: str,
    change: dict,
    param: str,
    names: str,
) -> None:
    settings.max_job_processes, settings.max_job_steps = 4, 1000
    body = {"model": lineage, "training_file": training_file}

    response = api.post("/v1/fine_tuning/jobs", json={**body, **change})

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param and names in response.json()["error"]["message"]
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []
    within = {"hyperparameters": {"n_epochs": 125, "batch_size": 1}, "processes": 1}
    assert api.post("/v1/fine_tuning/jobs", json={**body, **within}).status_code == 200


def test_a_job_asks_for_trainer_processes(api: TestClient, lineage: str, training_file: str) -> None:
    body = {"model": lineage, "training_file": training_file}
    asked = api.post("/v1/fine_tuning/jobs", json={**body, "processes": 2}).json()
    assert asked["processes"] == 2
    assert api.get(f"/v1/fine_tuning/jobs/{asked['id']}").json()["processes"] == 2
    assert api.post("/v1/fine_tuning/jobs", json=body).json()["processes"] is None  # the worker's default


def test_cursor_paging_newest_first(api: TestClient, lineage: str, training_file: str) -> None:
    ids = [
        api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()["id"]
        for _ in range(5)
    ]
    pages, after = [], None
    while True:
        params = {"limit": 2} | ({"after": after} if after else {})
        page = api.get("/v1/fine_tuning/jobs", params=params).json()
        pages.append([job["id"] for job in page["data"]])
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    assert api.get("/v1/fine_tuning/jobs", params={"after": "ftjob-nope"}).status_code == 404


def test_cancel_a_queued_job(api: TestClient, lineage: str, training_file: str) -> None:
    job = api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()
    cancelled = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    again = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert (
        api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"][0]["message"] == "Job cancelled."
    )


def test_a_file_in_use_cannot_be_deleted(api: TestClient, lineage: str, training_file: str) -> None:
    api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file})
    assert api.delete(f"/v1/files/{training_file}").status_code == 409


def test_checkpoints_start_empty(api: TestClient, lineage: str, training_file: str) -> None:
    job = api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"] == []


def _base(root: Path, folder: str, provenance_name: str | None = None) -> Path:
    path = root / folder
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    if provenance_name is not None:
        (path / "provenance.json").write_text(json.dumps({"model": provenance_name}))
    return path


def test_a_job_on_a_base_model_starts_a_lineage_named_by_its_suffix(
    api: TestClient, settings: Settings, training_file: str
) -> None:
    base = _base(settings.data_dir / "models", "smollm2", provenance_name="smollm2-135m-instruct")
    body = {"model": "smollm2-135m-instruct", "training_file": training_file, "suffix": "support"}

    job = api.post("/v1/fine_tuning/jobs", json=body).json()

    assert job["status"] == "queued" and job["model"] == "support", job
    lineage = api.get("/v1/lineages/support").json()
    assert lineage["base_model"] == str(base.resolve()) and lineage["method"]["type"] == "lora"
    again = api.post("/v1/fine_tuning/jobs", json={**body, "model": "smollm2"}).json()
    assert again["model"] == "support"  # the same base model by its folder's name: the same lineage
    assert [row["name"] for row in api.get("/v1/lineages").json()["data"]] == ["support"]


def test_a_job_on_a_base_model_without_suffix_names_the_lineage_after_it(
    api: TestClient, settings: Settings, training_file: str
) -> None:
    _base(settings.data_dir, "Tiny_Llama")
    job = api.post("/v1/fine_tuning/jobs", json={"model": "Tiny_Llama", "training_file": training_file})
    assert job.json()["model"] == "tiny_llama", job.json()


@pytest.mark.parametrize(
    ("suffix", "status", "code"),
    [("bot", 409, "lineage_exists"), ("Not A Name", 400, "invalid_value")],
)
def test_a_suffix_that_cannot_name_the_new_lineage_is_refused(
    api: TestClient,
    settings: Settings,
    lineage: str,
    training_file: str,
    suffix: str,
    status: int,
    code: str,
) -> None:
    _base(settings.data_dir / "models", "other-base")
    body = {"model": "other-base", "training_file": training_file, "suffix": suffix}

    response = api.post("/v1/fine_tuning/jobs", json=body)

    assert response.status_code == status, response.json()
    assert response.json()["error"]["param"] == "suffix" and response.json()["error"]["code"] == code
    assert api.get("/v1/fine_tuning/jobs").json()["data"] == []


def test_a_name_of_no_lineage_and_no_base_model_is_a_404(api: TestClient, training_file: str) -> None:
    response = api.post(
        "/v1/fine_tuning/jobs", json={"model": "nothing-here", "training_file": training_file}
    )
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model"
    assert "lineage or base model" in response.json()["error"]["message"]
    assert api.get("/v1/lineages").json()["data"] == []


def test_pause_and_resume_a_queued_job(api: TestClient, lineage: str, training_file: str) -> None:
    job = api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()

    paused = api.post(f"/v1/fine_tuning/jobs/{job['id']}/pause").json()
    assert paused["status"] == "paused" and paused["finished_at"] is None
    again = api.post(f"/v1/fine_tuning/jobs/{job['id']}/pause")
    assert again.status_code == 409 and again.json()["error"]["code"] == "cannot_pause"
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "paused"

    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/resume").json()["status"] == "queued"
    not_paused = api.post(f"/v1/fine_tuning/jobs/{job['id']}/resume")
    assert not_paused.status_code == 409 and not_paused.json()["error"]["code"] == "cannot_resume"
    messages = [e["message"] for e in api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]]
    assert messages[:2] == ["Job resumed.", "Job paused."]


def test_a_finished_job_cannot_be_paused_or_resumed(
    api: TestClient, lineage: str, training_file: str
) -> None:
    job = api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    for verb in ("pause", "resume"):
        response = api.post(f"/v1/fine_tuning/jobs/{job['id']}/{verb}")
        assert response.status_code == 409 and response.json()["error"]["code"] == "job_finished"
        assert "cancelled" in response.json()["error"]["message"]


def test_a_paused_job_can_be_cancelled(api: TestClient, lineage: str, training_file: str) -> None:
    job = api.post("/v1/fine_tuning/jobs", json={"model": lineage, "training_file": training_file}).json()
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/pause")
    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
