"""The `neuroplast` command line as a person uses it, against a running service."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.local import LocalService, local_service
from tests.service.conftest import FACTS


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_service(tmp_path_factory.mktemp("cli"), worker=False) as running:
        yield running


@pytest.fixture
def cli(service: LocalService, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("NEUROPLAST_URL", service.url)
    monkeypatch.setenv("NEUROPLAST_API_KEY", service.key)
    return CliRunner()


def test_upload_create_list_get_cancel(cli: CliRunner, tmp_path: Path) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(FACTS)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")

    uploaded = cli.invoke(app, ["files", "upload", str(facts)])
    assert uploaded.exit_code == 0, uploaded.output
    file_id = next(line.split('"')[3] for line in uploaded.output.splitlines() if '"id"' in line)
    created = cli.invoke(app, ["lineages", "create", "cli-bot", "--base-model", str(tmp_path / "base")])
    assert created.exit_code == 0, created.output
    submitted = cli.invoke(
        app,
        ["jobs", "create", "--lineage", "cli-bot", "--file", file_id, "--max-steps", "5", "--processes", "2"],
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip()
    assert job_id.startswith("ftjob-")

    assert job_id in cli.invoke(app, ["jobs", "list"]).output
    shown = cli.invoke(app, ["jobs", "get", job_id]).output
    assert '"max_steps": 5' in shown and '"processes": 2' in shown
    assert "cli-bot" in cli.invoke(app, ["lineages", "list"]).output
    assert cli.invoke(app, ["jobs", "cancel", job_id]).output.strip() == "cancelled"
    followed = cli.invoke(app, ["jobs", "follow", job_id])
    assert followed.exit_code == 1 and "Job cancelled." in followed.output


def test_errors_name_the_problem(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"oops": 1}\n')
    result = cli.invoke(app, ["files", "upload", str(bad)])
    assert result.exit_code == 1
    assert "HTTP 400" in result.output and "line 2" in result.output and "param: file" in result.output


def test_keys_create_prints_a_working_key(
    service: LocalService, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli.invoke(app, ["keys", "create", "--tenant", "newteam", "--data-dir", str(service.data_dir)])
    assert result.exit_code == 0
    monkeypatch.setenv("NEUROPLAST_API_KEY", result.output.strip())
    listed = cli.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and listed.output == ""  # a new tenant sees nothing of the others
