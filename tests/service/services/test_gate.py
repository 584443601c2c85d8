"""The health gate: a version whose panel shows rot is rejected with its report; serving stays put."""

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Job, Lineage, PanelResult, Version, WebhookEvent
from service.services.gate import gate
from service.settings import Settings
from service.storage.store import ArtifactStore
from tests.service.api.test_health_checks import _published

REFERENCE = [-3.0 - 0.1 * (i % 5) for i in range(24)]  # minus the mean NLL of 24 reference chunks


def _lineage(api: TestClient, database: Database, model_path: str, health: dict) -> None:
    """Lineage 'bot' with the given health config and versions 1 and 2 published, v2 promoted."""
    api.post(
        "/v1/lineages", json={"name": "bot", "base_model": model_path, "health": health}
    ).raise_for_status()
    _published(database, versions=2)


def _candidate(
    database: Database, settings: Settings, scores: list[float], evaluated: bool = True
) -> tuple[str, str]:
    """Version 3 of 'bot' (parent v2, promoted) with `scores` on perplexity; gate it."""
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bot")).one()
        session.add(
            PanelResult(lineage_pk=lineage.pk, version=2, suite="perplexity", scores=REFERENCE, details={})
        )
        session.add(
            PanelResult(lineage_pk=lineage.pk, version=3, suite="perplexity", scores=scores, details={})
        )
        version = Version(
            lineage_pk=lineage.pk,
            number=3,
            parent_number=2,
            job_id="ftjob-3",
            status="candidate",
            path="/store/bot/v3",
            metrics={},
        )
        session.add(version)
        session.flush()
        job = Job(id="ftjob-3", tenant_pk=lineage.tenant_pk, lineage_pk=lineage.pk, training_file="f",
                  status="evaluating", hyperparameters={}, seed=0)  # fmt: skip
        store = ArtifactStore.from_settings(settings)
        return gate(session, lineage, job, version, store, evaluated), str(version.report_id)


def test_a_rotten_version_is_rejected_and_serving_stays(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    _lineage(api, database, model_path, {"gate_suites": ["perplexity"]})
    worse = [score - 1.0 for score in REFERENCE]  # far worse on every chunk
    decision, report_id = _candidate(database, settings, worse)

    assert decision == "rejected"
    lineage = api.get("/v1/lineages/bot").json()
    assert lineage["promoted_version"] == 2  # the gateway keeps serving v2
    versions = {v["version"]: v for v in api.get("/v1/lineages/bot/versions").json()["data"]}
    assert (versions[3]["status"], versions[3]["report_id"]) == ("rejected", report_id)

    report = api.get(f"/v1/reports/{report_id}").json()
    assert (report["verdict"], report["gate"], report["reference_version"]) == ("rot", "rejected", 2)
    perplexity = report["suites"]["perplexity"]
    assert perplexity["g"] > 0.3 and perplexity["low"] > 0 and perplexity["items"] == 24
    page = api.get(f"/v1/reports/{report_id}.html")
    assert page.status_code == 200 and "<svg" in page.text and "Health report: bot@3" in page.text
    stored = settings.artifact_dir / "acme" / "bot" / "reports"
    assert json.loads((stored / f"{report_id}.json").read_text())["verdict"] == "rot"
    with database.session() as session:
        events = [event.type for event in session.scalars(select(WebhookEvent))]
    assert "lineage.version.rejected" in events

    # A manual promote of the rejected version needs force.
    refused = api.post("/v1/lineages/bot/promote", json={"version": 3})
    assert refused.status_code == 409 and refused.json()["error"]["param"] == "force"
    assert api.get("/v1/lineages/bot").json()["promoted_version"] == 2
    forced = api.post("/v1/lineages/bot/promote", json={"version": 3, "force": True})
    assert forced.status_code == 200 and api.get("/v1/lineages/bot").json()["promoted_version"] == 3


def test_a_healthy_version_is_promoted(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    _lineage(api, database, model_path, {"gate_suites": ["perplexity"]})
    decision, report_id = _candidate(database, settings, [score + 0.01 for score in REFERENCE])
    assert decision == "promoted"
    assert api.get("/v1/lineages/bot").json()["promoted_version"] == 3
    assert api.get(f"/v1/reports/{report_id}").json()["verdict"] == "ok"


def test_without_a_gate_every_version_is_promoted(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    _lineage(api, database, model_path, {"gate": False})
    decision, report_id = _candidate(database, settings, [score - 1.0 for score in REFERENCE])
    assert (decision, report_id) == ("promoted", "None")


def test_a_version_whose_evaluation_failed_is_not_promoted(
    api: TestClient, database: Database, settings: Settings, model_path: str
) -> None:
    _lineage(api, database, model_path, {"gate_suites": ["perplexity"]})
    decision, report_id = _candidate(database, settings, REFERENCE, evaluated=False)
    assert (decision, report_id) == ("rejected", "None")
    assert api.get("/v1/lineages/bot").json()["promoted_version"] == 2
