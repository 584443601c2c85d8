"""Every test here that uses the database runs twice: on SQLite and on a real Postgres server."""

import pytest

from tests.service.conftest import DATABASES, both_databases


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    return both_databases(request)
