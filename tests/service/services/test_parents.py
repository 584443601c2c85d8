"""A lineage never changes parent silently: what a job trains from, and why, is on the job, in its
first event and on the lineage; a job may name its parent (`model: "<lineage>@<N>"`)."""

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Lineage, Version
from service.settings import Settings
from service.worker.lease import JobQueue
from tests.service.conftest import FACTS, upload
from trainers.contracts.statuses import VersionStatus


def _versions(database: Database, *statuses: VersionStatus) -> None:
    """Give lineage `bot` versions 1, 2, ... with these statuses, as workers and the gate leave them."""
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bot")).one()
        for number, status in enumerate(statuses, start=1):
            report = f"report-{number}" if status == VersionStatus.REJECTED else None
            session.add(
                Version(
                    lineage_pk=lineage.pk,
                    number=number,
                    parent_number=None,
                    job_id=f"ftjob-{number}",
                    status=status,
                    path=f"/store/v{number}",
                    metrics={},
                    report_id=report,
                )
            )
            if status == VersionStatus.PROMOTED:
                lineage.promoted_version = number


def _start(api: TestClient, settings: Settings, database: Database, model: str, **body: object) -> dict:
    """Create a job on `model`, let a worker claim it; the job as the API shows it, and its events."""
    file_id = upload(api, FACTS)["id"]
    created = api.post("/v1/fine_tuning/jobs", json={"model": model, "training_file": file_id, **body})
    assert created.status_code == 200, created.text
    assert JobQueue(database, settings).claim("worker-1") is not None
    job = api.get(f"/v1/fine_tuning/jobs/{created.json()['id']}").json()
    events = api.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    return job | {"events": [event["message"] for event in reversed(events)]}


def _lineage(api: TestClient, model_path: str) -> None:
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()


def test_a_first_job_trains_from_the_base_model_and_says_so(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    _lineage(api, model_path)
    job = _start(api, settings, database, "bot")
    reason = "Training from the base model: the lineage's first version."
    assert (job["parent_version"], job["parent_reason"]) == (None, reason)
    assert job["events"][job["events"].index(reason) + 1].startswith("Started on worker")


def test_after_a_rejection_the_next_job_names_what_it_passed_over(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    _lineage(api, model_path)
    _versions(database, VersionStatus.PROMOTED, VersionStatus.REJECTED)
    reason = "Training from v1, the promoted version: v2 was rejected by the health gate (report-2)."
    lineage = api.get("/v1/lineages/bot").json()
    assert (lineage["head_version"], lineage["head_reason"]) == (1, reason)
    job = _start(api, settings, database, "bot")
    assert (job["parent_version"], job["parent_reason"]) == (1, reason)
    assert reason in job["events"]


def test_when_no_version_is_promoted_the_job_starts_from_the_base_and_says_why(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    _lineage(api, model_path)
    _versions(database, VersionStatus.REJECTED)
    job = _start(api, settings, database, "bot")
    assert job["parent_version"] is None
    assert job["parent_reason"] == (
        "Training from the base model: no version is promoted "
        "(v1 was rejected by the health gate (report-1))."
    )


def test_a_job_may_name_its_parent_and_a_rejected_one_needs_force(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    _lineage(api, model_path)
    _versions(database, VersionStatus.PROMOTED, VersionStatus.REJECTED)
    file_id = upload(api, FACTS)["id"]
    refused = api.post("/v1/fine_tuning/jobs", json={"model": "bot@2", "training_file": file_id})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "version_rejected" and "report-2" in error["message"]
    missing = api.post("/v1/fine_tuning/jobs", json={"model": "bot@7", "training_file": file_id})
    assert (missing.status_code, missing.json()["error"]["param"]) == (404, "model")
    malformed = api.post("/v1/fine_tuning/jobs", json={"model": "bot@latest", "training_file": file_id})
    assert (malformed.status_code, malformed.json()["error"]["param"]) == (400, "model")
    job = _start(api, settings, database, "bot@2", force=True)
    assert job["parent_version"] == 2 and job["model"] == "bot"
    assert job["parent_reason"] == "Training from v2, the version the job named (bot@2)."
