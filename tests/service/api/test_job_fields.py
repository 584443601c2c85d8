"""OpenAI's job fields as the API takes and shows them: `validation_file`, `suffix` (the version's
name), `result_files` (the metrics CSV a succeeded job leaves as a file)."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Job, Lineage, Tenant, Version
from service.services import jobs
from service.services.files import store_results
from service.settings import Settings
from tests.service.conftest import FACTS, upload
from trainers.contracts.statuses import JobStatus, VersionStatus


def _create(api: TestClient, **body: object):
    return api.post(
        "/v1/fine_tuning/jobs", json={"model": "bot", "training_file": upload(api, FACTS)["id"], **body}
    )


class TestValidationFile:
    def test_a_job_names_its_validation_file(self, api: TestClient, lineage: str) -> None:
        validation = upload(api, FACTS, name="valid.jsonl")["id"]
        job = _create(api, validation_file=validation).json()
        assert job["validation_file"] == validation
        assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["validation_file"] == validation
        events = api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
        assert "Validated validation file: 8 rows." in [event["message"] for event in events]

    def test_another_tenants_file_is_not_found(
        self, api: TestClient, lineage: str, other_tenant: dict[str, str]
    ) -> None:
        theirs = api.post(
            "/v1/files", files={"file": ("v.jsonl", FACTS.encode())}, headers=other_tenant
        ).json()["id"]
        response = _create(api, validation_file=theirs)
        assert response.status_code == 404
        assert response.json()["error"]["param"] == "validation_file"

    def test_a_results_file_is_no_validation_file(
        self, api: TestClient, lineage: str, database: Database, settings: Settings
    ) -> None:
        with database.session() as session:
            tenant = session.scalars(select(Tenant).where(Tenant.name == "acme")).one()
            results = store_results(session, settings, tenant, "ftjob-x", "step,train_loss\n1,2.0\n").id
        response = _create(api, validation_file=results)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "validation_file" and "fine-tune-results" in error["message"]

    def test_a_file_a_job_validates_on_cannot_be_deleted(self, api: TestClient, lineage: str) -> None:
        validation = upload(api, FACTS, name="valid.jsonl")["id"]
        _create(api, validation_file=validation).raise_for_status()
        assert api.delete(f"/v1/files/{validation}").json()["error"]["code"] == "file_in_use"


class TestSuffix:
    def test_a_succeeded_job_names_its_version_with_the_suffix(
        self, api: TestClient, lineage: str, database: Database
    ) -> None:
        job = _create(api, suffix="Support_v2").json()
        _succeed(database, job["id"], number=1)

        shown = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        assert (shown["suffix"], shown["fine_tuned_model"]) == ("Support_v2", "bot@1-Support_v2")

    def test_the_suffixed_name_and_the_plain_one_address_the_version(
        self, api: TestClient, lineage: str, database: Database
    ) -> None:
        _succeed(database, _create(api, suffix="support").json()["id"], number=1)

        for model in ("bot@1-support", "bot@1"):
            response = _create(api, model=model)
            assert response.status_code == 200, response.json()
            assert response.json()["parent_version"] == 1
        wrong = _create(api, model="bot@1-sales")
        assert wrong.status_code == 404 and wrong.json()["error"]["param"] == "model"
        assert "'bot@1-support'" in wrong.json()["error"]["message"]

    def test_without_a_suffix_the_name_is_as_before(
        self, api: TestClient, lineage: str, database: Database
    ) -> None:
        job = _create(api).json()
        _succeed(database, job["id"], number=1)
        assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["fine_tuned_model"] == "bot@1"


class TestResultFiles:
    def test_a_results_file_is_listed_and_read_like_any_file(
        self, api: TestClient, database: Database, settings: Settings
    ) -> None:
        csv = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,2.5,0.1,,\n"
        with database.session() as session:
            tenant = session.scalars(select(Tenant).where(Tenant.name == "acme")).one()
            file_id = store_results(session, settings, tenant, "ftjob-x", csv).id

        listed = {file["id"]: file for file in api.get("/v1/files").json()["data"]}
        assert listed[file_id]["purpose"] == "fine-tune-results"
        assert listed[file_id]["filename"] == "ftjob-x-results.csv" and listed[file_id]["rows"] == 1
        content = api.get(f"/v1/files/{file_id}/content")
        assert content.status_code == 200 and content.text == csv
        assert content.headers["content-type"].startswith("text/csv")

    def test_content_of_another_tenants_file_is_not_found(
        self, api: TestClient, other_tenant: dict[str, str]
    ) -> None:
        file_id = upload(api, FACTS)["id"]
        assert api.get(f"/v1/files/{file_id}/content").text == FACTS
        assert api.get(f"/v1/files/{file_id}/content", headers=other_tenant).status_code == 404


def _succeed(database: Database, job_id: str, number: int) -> None:
    """Mark the job succeeded with version `number`, as a worker's publish leaves it."""
    with database.session() as session:
        job = session.scalars(select(Job).where(Job.id == job_id)).one()
        lineage = session.get_one(Lineage, job.lineage_pk)
        job.status, job.version_number = JobStatus.SUCCEEDED, number
        session.add(
            Version(
                lineage_pk=lineage.pk,
                number=number,
                parent_number=None,
                job_id=job.id,
                status=VersionStatus.PROMOTED,
                path=f"/store/v{number}",
                metrics={},
            )
        )
        lineage.promoted_version = number


WANDB = {"type": "wandb", "wandb": {"project": "facts", "name": "run-1", "tags": ["nightly"]}}


class TestIntegrations:
    @pytest.mark.parametrize("kind", ["wandb", "mlflow", "tensorboard"])
    def test_a_missing_tracker_package_is_a_400_naming_it(
        self, api: TestClient, lineage: str, monkeypatch: pytest.MonkeyPatch, kind: str
    ) -> None:
        monkeypatch.setattr(jobs, "missing_package", lambda integration_type: f"{integration_type}-pkg")
        response = _create(api, integrations=[{"type": kind, kind: {"project": "facts"}}])
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "integrations[0].type" and error["code"] == "integration_unavailable"
        assert f"pip install {kind}-pkg" in error["message"]

    def test_a_job_shows_its_integrations_as_openai_does(
        self, api: TestClient, lineage: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(jobs, "missing_package", lambda integration_type: None)
        job = _create(api, integrations=[WANDB]).json()
        expected = {"project": "facts", "name": "run-1", "entity": None, "tags": ["nightly"]}
        assert job["integrations"] == [{"type": "wandb", "wandb": expected}]
        assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["integrations"] == job["integrations"]

    def test_settings_under_another_type_are_refused(self, api: TestClient, lineage: str) -> None:
        response = _create(api, integrations=[{"type": "wandb", "mlflow": {"project": "facts"}}])
        assert response.status_code == 400 and response.json()["error"]["param"].startswith("integrations")
