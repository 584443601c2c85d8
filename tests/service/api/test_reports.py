"""`/v1/reports`: a report's page opens in a browser through a short-lived signed link, without a key."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Lineage, Report, now
from service.services import report_links
from service.settings import Settings


@pytest.fixture
def report_id(api: TestClient, database: Database, model_path: str) -> str:
    """A health report of acme's bot@1, as a worker's health check stores one."""
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    body = {
        "id": "report-1",
        "object": "health_report",
        "lineage": "bot",
        "version": 1,
        "reference_version": 0,
        "origin": "health check hc-1",
        "verdict": "ok",
        "gate": None,
        "suites": {},
        "created_at": 0,
    }
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bot")).one()
        session.add(
            Report(
                id="report-1",
                tenant_pk=lineage.tenant_pk,
                lineage_pk=lineage.pk,
                version=1,
                verdict="ok",
                body=body,
                path="/store/acme/bot/reports/report-1",
            )
        )
    return "report-1"


def test_a_signed_link_opens_the_page_without_a_key(api: TestClient, report_id: str) -> None:
    link = api.post(f"/v1/reports/{report_id}/link", json={"expires_in": 60}).json()
    assert link["url"].startswith(f"http://testserver/v1/reports/{report_id}.html?expires=")
    assert now() + 55 <= link["expires_at"] <= now() + 60
    key = api.headers.pop("Authorization")

    page = api.get(link["url"])

    assert page.status_code == 200 and "Health report: bot@1" in page.text
    assert api.get(f"/v1/reports/{report_id}.html").status_code == 401  # no link, no key
    api.headers["Authorization"] = key
    assert api.get(f"/v1/reports/{report_id}.html").status_code == 200  # the key alone still works


def test_a_link_that_was_changed_or_has_expired_is_refused(
    api: TestClient, settings: Settings, report_id: str
) -> None:
    link = api.post(f"/v1/reports/{report_id}/link").json()
    assert link["expires_at"] - now() > 14 * 60  # 15 minutes unless asked otherwise
    api.headers.pop("Authorization")
    later = link["url"].replace(f"expires={link['expires_at']}", f"expires={link['expires_at'] + 3600}")
    expired = now() - 1
    past = f"/v1/reports/{report_id}.html?expires={expired}&signature="
    past += report_links.sign(settings, report_id, expired)
    for url, code in ((later, "invalid_link"), (past, "link_expired")):
        answer = api.get(url)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == code, url


def test_links_are_only_for_the_tenants_own_reports(
    api: TestClient, other_tenant: dict[str, str], report_id: str
) -> None:
    assert api.post(f"/v1/reports/{report_id}/link", headers=other_tenant).status_code == 404
    assert api.post("/v1/reports/report-nope/link").status_code == 404
    too_long = api.post(f"/v1/reports/{report_id}/link", json={"expires_in": 2 * 24 * 3600})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "expires_in"


def test_a_made_up_signature_of_any_characters_is_a_403(api: TestClient, report_id: str) -> None:
    api.headers.pop("Authorization")
    for signature in ("0" * 64, "é" * 64, ""):
        answer = api.get(
            f"/v1/reports/{report_id}.html", params={"expires": now() + 60, "signature": signature}
        )
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "invalid_link", signature
