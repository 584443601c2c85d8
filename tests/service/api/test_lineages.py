"""`/v1/lineages`: creation with method configs, conflicts and bad input."""

import pytest
from fastapi.testclient import TestClient


def test_create_and_get(api: TestClient, model_path: str) -> None:
    body = api.post(
        "/v1/lineages",
        json={
            "name": "support-bot",
            "base_model": model_path,
            "method": {"type": "lora", "lora": {"r": 4}},
        },
    ).json()
    assert body["object"] == "lineage" and body["name"] == "support-bot"
    assert body["method"]["type"] == "lora" and body["method"]["lora"]["r"] == 4
    assert body["method"]["lora"]["alpha"] > 0  # defaults filled in
    assert body["promoted_version"] is None and body["head_version"] is None
    assert body["evaluation"]["recall_items"] == 32 and body["evaluation"]["continual_eval_every"] == 25
    assert api.get("/v1/lineages/support-bot").json() == body
    assert api.get("/v1/lineages/support-bot/versions").json() == {
        "object": "list",
        "data": [],
        "has_more": False,
    }
    assert [row["name"] for row in api.get("/v1/lineages").json()["data"]] == ["support-bot"]


def test_duplicate_name_is_409(api: TestClient, model_path: str) -> None:
    assert api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).status_code == 200
    response = api.post("/v1/lineages", json={"name": "bot", "base_model": model_path})
    assert response.status_code == 409
    assert response.json()["error"]["param"] == "name"
    assert len(api.get("/v1/lineages").json()["data"]) == 1


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"name": "Bad Name!", "base_model": "org/model"}, "name"),
        ({"name": "bot@2", "base_model": "org/model"}, "name"),
        ({"name": "bot", "base_model": "/no/such/folder"}, "base_model"),
        ({"name": "bot", "base_model": "org/model", "method": {"type": "dreaming"}}, "method.type"),
        (
            {
                "name": "bot",
                "base_model": "org/model",
                "method": {"type": "lora", "lora": {"rank": 8}},
            },
            "method.lora.rank",
        ),
        (
            {
                "name": "bot",
                "base_model": "org/model",
                "method": {"type": "lora", "lora": {"r": -1}},
            },
            "method.lora.r",
        ),
        (
            {"name": "bot", "base_model": "org/model", "method": {"type": "lora", "ilora": {}}},
            "method",
        ),
        ({"name": "bot", "base_model": "org/model", "method": {"type": "lora", "lora": 5}}, "method.lora"),
        ({"name": "bot", "base_model": "org/model", "colour": "red"}, "colour"),
        (
            {"name": "bot", "base_model": "org/model", "evaluation": {"held_out_fraction": 0.9}},
            "evaluation.held_out_fraction",
        ),
        ({"name": "bot", "base_model": "org/model", "evaluation": {"recall": 3}}, "evaluation.recall"),
    ],
)
def test_bad_input_names_the_field(api: TestClient, payload: dict, param: str) -> None:
    response = api.post("/v1/lineages", json=payload)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    assert api.get("/v1/lineages").json()["data"] == []


def test_a_rank_vllm_cannot_load_is_refused(api: TestClient, model_path: str) -> None:
    too_big = {"name": "big", "base_model": model_path, "method": {"type": "lora", "lora": {"r": 32}}}
    response = api.post("/v1/lineages", json=too_big)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "method.lora.r" and "largest LoRA rank, 16" in error["message"]
    assert api.get("/v1/lineages/big").status_code == 404
    native = {"name": "mem", "base_model": model_path, "method": {"type": "titans", "titans": {}}}
    assert api.post("/v1/lineages", json=native).status_code == 200  # the native backend has no such limit


def test_unknown_lineage_is_404(api: TestClient) -> None:
    assert api.get("/v1/lineages/nope").status_code == 404


def test_retention_of_a_lineage_without_versions_is_empty(api: TestClient, model_path: str) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    retention = api.get("/v1/lineages/bot/retention").json()
    assert retention["object"] == "lineage.retention"
    assert (retention["versions"], retention["jobs"], retention["matrices"]["recall_exact"]) == ([], [], [])
    assert retention["summary"]["recall_exact"]["forgetting"] is None
    assert api.get("/v1/lineages/nope/retention").status_code == 404
