"""Bearer keys and tenant isolation."""

from fastapi.testclient import TestClient

from tests.service.conftest import FACTS, upload


def test_missing_key_is_401(api: TestClient) -> None:
    response = api.get("/v1/files", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_wrong_key_is_401(api: TestClient) -> None:
    for key in ("np_nothere_secret", "sk-something", api.headers["Authorization"].split()[1] + "x"):
        response = api.get("/v1/files", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401, key
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_health_needs_no_key(api: TestClient) -> None:
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}
    assert api.get("/readyz", headers={"Authorization": ""}).json()["database"] == "ok"


def test_a_tenant_sees_only_its_own_objects(
    api: TestClient, other_tenant: dict[str, str], model_path: str
) -> None:
    training_file = upload(api, FACTS)["id"]
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path})
    job = api.post("/v1/fine_tuning/jobs", json={"model": "bot", "training_file": training_file}).json()["id"]

    for path in (
        f"/v1/files/{training_file}",
        "/v1/lineages/bot",
        "/v1/lineages/bot/versions",
        f"/v1/fine_tuning/jobs/{job}",
        f"/v1/fine_tuning/jobs/{job}/events",
        f"/v1/fine_tuning/jobs/{job}/checkpoints",
    ):
        assert api.get(path, headers=other_tenant).status_code == 404, path
    assert api.post(f"/v1/fine_tuning/jobs/{job}/cancel", headers=other_tenant).status_code == 404
    assert api.delete(f"/v1/files/{training_file}", headers=other_tenant).status_code == 404
    for path in ("/v1/files", "/v1/lineages", "/v1/fine_tuning/jobs"):
        assert api.get(path, headers=other_tenant).json()["data"] == [], path
    # The other tenant cannot train on this tenant's file either, and may reuse the name.
    borrowed = api.post(
        "/v1/fine_tuning/jobs",
        headers=other_tenant,
        json={"model": "bot", "training_file": training_file},
    )
    assert borrowed.status_code == 404
    reused = api.post("/v1/lineages", headers=other_tenant, json={"name": "bot", "base_model": model_path})
    assert reused.status_code == 200


def test_the_api_docs_declare_the_bearer_key(api: TestClient) -> None:
    """/docs shows an "Authorize" button, and "Try it out" sends the key to every keyed route."""
    document = api.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`neuroplast keys create`).",
    }
    keyed = {"HTTPBearer": []}
    assert keyed in document["paths"]["/v1/fine_tuning/jobs"]["post"]["security"]
    assert keyed in document["paths"]["/v1/reports/{report_id}.html"]["get"]["security"]
    assert "security" not in document["paths"]["/healthz"]["get"]
    assert api.get("/docs").status_code == 200
