"""`/readyz` answers anyone, so it says whether, never why: the why names other tenants' data."""

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from service.db import Database
from service.main import create_app
from service.services.keys import create_key
from service.settings import Settings

DATABASE_ERROR = 'connection to server at "db.internal" (10.1.2.3), port 5432 failed: password for "np"'
SERVING_REASONS = (
    "acme/secret-bot@3 is not loaded yet",
    "no ready replica serves /data/models/acme-private-base",
)


class BrokenDatabase:
    def session(self) -> None:
        raise OperationalError("SELECT 1", {}, Exception(DATABASE_ERROR))


class NotReadyTier:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def ready(self) -> tuple[bool, str]:
        return False, self.reason


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of an app whose background tasks never start: the test sets its state."""
    yield TestClient(create_app(settings))


def test_without_a_key_readyz_names_no_tenant_path_or_error(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the service's level
    state = client.app.state  # type: ignore[attr-defined]
    database = state.database
    state.database = BrokenDatabase()
    broken = client.get("/readyz")
    state.database = database
    answers = []
    for reason in SERVING_REASONS:
        state.serving = NotReadyTier(reason)
        answers.append(client.get("/readyz"))

    assert (broken.status_code, broken.json()) == (503, {"status": "unavailable", "database": "unavailable"})
    for answer in answers:
        assert (answer.status_code, answer.json()) == (
            503,
            {"status": "unavailable", "database": "ok", "serving": "unavailable"},
        )
    for leak in ("db.internal", "10.1.2.3", "password", "acme", "secret-bot", "/data/models"):
        assert all(leak not in answer.text for answer in [broken, *answers]), leak
    # The operator still learns why, from the log.
    assert DATABASE_ERROR in caplog.text and all(reason in caplog.text for reason in SERVING_REASONS)


def test_a_platform_key_reads_why_serving_is_not_ready(client: TestClient, database: Database) -> None:
    with database.session() as session:
        platform, member = create_key(session, "ops", scope="platform"), create_key(session, "acme")
        tenant_admin = create_key(session, "acme", scope="admin")
    client.app.state.serving = NotReadyTier(SERVING_REASONS[0])  # type: ignore[attr-defined]

    def serving(key: str) -> str:
        answer = client.get("/readyz", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 503
        return str(answer.json()["serving"])

    assert serving(platform) == SERVING_REASONS[0]
    assert serving(tenant_admin) == serving(member) == "unavailable"
    assert serving("np_nothere_secret") == serving("") == "unavailable"
