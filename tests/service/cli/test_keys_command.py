"""`neuroplast keys`: create, list, rotate and revoke keys in the service's database."""

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.db import Database
from service.services.keys import tenant_for_key
from service.settings import Settings


def test_create_list_rotate_revoke(tmp_path: Path) -> None:
    cli, data = CliRunner(), ["--data-dir", str(tmp_path)]
    database = Database(Settings(data_dir=tmp_path).resolved_database_url)

    created = cli.invoke(
        app, ["keys", "create", "--tenant", "acme", "--scope", "admin", "--name", "ops", *data]
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    key_id = key.split("_")[1]
    listed = cli.invoke(app, ["keys", "list", *data]).output
    assert key_id in listed and "admin" in listed and "live" in listed and key not in listed

    rotated = cli.invoke(app, ["keys", "rotate", key_id, *data])
    new_key = rotated.output.strip()
    with database.session() as session:
        assert tenant_for_key(session, key) is None
        assert tenant_for_key(session, new_key).name == "acme"  # type: ignore[union-attr]

    revoked = cli.invoke(app, ["keys", "revoke", new_key.split("_")[1], *data])
    assert revoked.exit_code == 0, revoked.output
    with database.session() as session:
        assert tenant_for_key(session, new_key) is None
    again = cli.invoke(app, ["keys", "revoke", new_key.split("_")[1], *data])
    assert again.exit_code == 1 and "No live API key" in again.output
    bad = cli.invoke(app, ["keys", "create", "--tenant", "Not/A/Name", *data])
    assert bad.exit_code == 1 and "Invalid tenant name" in bad.output
    database.dispose()
