"""`neuroplast migrate`: the newest schema without serving (for upgrades and init containers)."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from service.cli import app
from service.db import MIGRATIONS_DIR


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """The command configures logging for its process; give the test process its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_migrate_creates_the_newest_schema_and_is_idempotent(tmp_path: Path) -> None:
    cli, url = CliRunner(), f"sqlite:///{tmp_path / 'state.db'}"
    env = {"NEUROPLAST_DATABASE_URL": url}

    first = cli.invoke(app, ["migrate", "--data-dir", str(tmp_path)], env=env)
    again = cli.invoke(app, ["migrate", "--data-dir", str(tmp_path)], env=env)

    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert "database at the newest schema: sqlite:///" in first.output
    engine = create_engine(url)
    with engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert revision == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert {"jobs", "versions", "lineages", "api_keys"} <= tables
