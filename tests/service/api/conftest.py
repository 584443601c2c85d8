"""Every test here that uses the database runs twice: on SQLite and on a real Postgres server."""

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import DATABASES, both_databases


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    return both_databases(request)


@pytest.fixture
def lineage(api: TestClient, model_path: str) -> str:
    """Lineage 'bot' of tenant 'acme', on a model folder the API never loads."""
    api.post("/v1/lineages", json={"name": "bot", "base_model": model_path}).raise_for_status()
    return "bot"
