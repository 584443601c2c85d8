"""The `neuroplast` command line as a person uses it, against a running service."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from service.cli import app
from service.db import Database
from service.local import LocalService, free_port, local_service
from service.models import Lineage, Report, Version
from service.settings import Settings
from tests.service.conftest import FACTS


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_service(tmp_path_factory.mktemp("cli"), worker=False, serving="false") as running:
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
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: HTTP 400") and "line 2" in line and "param: file" in line
    missing = cli.invoke(app, ["jobs", "get", "ftjob-nope"])
    assert missing.exit_code == 1 and missing.stderr.startswith("error: HTTP 404")


def test_keys_create_prints_a_working_key(
    service: LocalService, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli.invoke(app, ["keys", "create", "--tenant", "newteam", "--data-dir", str(service.data_dir)])
    assert result.exit_code == 0
    monkeypatch.setenv("NEUROPLAST_API_KEY", result.output.strip())
    listed = cli.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0 and listed.output == ""  # a new tenant sees nothing of the others


def test_files_list_get_delete(cli: CliRunner, tmp_path: Path) -> None:
    facts = tmp_path / "people.jsonl"
    facts.write_text(FACTS)
    file_id = json.loads(cli.invoke(app, ["files", "upload", str(facts)]).output)["id"]

    listed = cli.invoke(app, ["files", "list"]).output
    assert any(
        line.startswith(file_id) and "8 rows" in line and "people.jsonl" in line
        for line in listed.splitlines()
    )
    page = json.loads(cli.invoke(app, ["files", "list", "--json"]).output)
    assert page["object"] == "list" and file_id in [row["id"] for row in page["data"]]
    assert json.loads(cli.invoke(app, ["files", "get", file_id, "--json"]).output)["rows"] == 8
    assert cli.invoke(app, ["files", "delete", file_id]).output.strip() == f"deleted {file_id}"
    gone = cli.invoke(app, ["files", "get", file_id])
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr


def test_jobs_events_and_checkpoints(cli: CliRunner, tmp_path: Path) -> None:
    job_id = _queued_job(cli, tmp_path, "events-bot")

    events = cli.invoke(app, ["jobs", "events", job_id])
    assert events.exit_code == 0 and "info" in events.output and len(events.output.splitlines()) >= 1
    page = json.loads(cli.invoke(app, ["jobs", "events", job_id, "--json"]).output)
    assert page["object"] == "list" and all(
        event["object"] == "fine_tuning.job.event" for event in page["data"]
    )
    assert cli.invoke(app, ["jobs", "checkpoints", job_id]).output == ""  # queued: none yet
    assert json.loads(cli.invoke(app, ["jobs", "checkpoints", job_id, "--json"]).output)["data"] == []
    assert json.loads(cli.invoke(app, ["jobs", "list", "--json"]).output)["data"][0]["id"] == job_id
    assert json.loads(cli.invoke(app, ["jobs", "get", job_id, "--json"]).output)["id"] == job_id


def test_promote_rollback_retention(cli: CliRunner, service: LocalService, tmp_path: Path) -> None:
    _lineage_with_versions(cli, service, tmp_path, "swap-bot", versions=2)

    promoted = cli.invoke(app, ["lineages", "promote", "swap-bot", "1"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.strip() == "swap-bot: promoted v1 (no serving tier)"
    assert (
        cli.invoke(app, ["lineages", "rollback", "swap-bot"])
        .output.strip()
        .startswith("swap-bot: promoted v2")
    )
    listed = json.loads(cli.invoke(app, ["lineages", "list", "--json"]).output)["data"]
    assert {row["name"]: row["promoted_version"] for row in listed}["swap-bot"] == 2
    missing = cli.invoke(app, ["lineages", "promote", "swap-bot", "9"])
    assert missing.exit_code == 1 and "HTTP 404" in missing.stderr and "param: version" in missing.stderr

    table = cli.invoke(app, ["lineages", "retention", "swap-bot"])
    assert table.exit_code == 0 and table.output.startswith("recall")
    retention = json.loads(cli.invoke(app, ["lineages", "retention", "swap-bot", "--json"]).output)
    assert retention["object"] == "lineage.retention" and retention["versions"] == [1, 2]


def test_health_run_get_list_and_report_open_and_link(
    cli: CliRunner, service: LocalService, tmp_path: Path
) -> None:
    _lineage_with_versions(cli, service, tmp_path, "checked-bot", versions=1)

    queued = cli.invoke(app, ["health", "run", "--lineage", "checked-bot", "--suite", "perplexity"])
    assert queued.exit_code == 0, queued.output
    check_id = queued.output.strip()
    assert check_id.startswith("hc-")
    assert cli.invoke(app, ["health", "get", check_id]).output.strip() == f"{check_id}  checked-bot@1 queued"
    check = json.loads(cli.invoke(app, ["health", "get", check_id, "--json"]).output)
    assert (check["suites"], check["status"]) == (["perplexity"], "queued")

    report_id = _report(service, "checked-bot")
    out = tmp_path / "page.html"
    opened = cli.invoke(app, ["reports", "open", report_id, "--out", str(out)])
    assert opened.exit_code == 0, opened.output
    assert opened.output.strip() == str(out.resolve())
    assert "Health report: checked-bot@1" in out.read_text()
    unknown = cli.invoke(app, ["reports", "open", "rep-nope", "--out", str(tmp_path / "x.html")])
    assert unknown.exit_code == 1 and "HTTP 404" in unknown.stderr and not (tmp_path / "x.html").exists()

    link = cli.invoke(app, ["reports", "link", report_id, "--expires-in", "60"])
    assert link.exit_code == 0, link.output
    page = httpx.get(link.output.strip())  # a browser's request: no key
    assert page.status_code == 200 and "Health report: checked-bot@1" in page.text
    unlinked = cli.invoke(app, ["reports", "link", "rep-nope"])
    assert unlinked.exit_code == 1 and unlinked.stderr.count("\n") == 1 and "HTTP 404" in unlinked.stderr

    listed = cli.invoke(app, ["health", "list", "--lineage", "checked-bot"])
    assert listed.exit_code == 0 and listed.output.splitlines() == [f"{check_id}  checked-bot@1 queued"]
    page_json = json.loads(cli.invoke(app, ["health", "list", "--json"]).output)
    assert check_id in [row["id"] for row in page_json["data"]]
    unknown_lineage = cli.invoke(app, ["health", "list", "--lineage", "nope"])
    assert unknown_lineage.exit_code == 1 and "Traceback" not in unknown_lineage.output
    assert "HTTP 404" in unknown_lineage.stderr and "param: lineage" in unknown_lineage.stderr


def test_a_job_on_a_base_model_starts_the_lineage_its_suffix_names(
    cli: CliRunner, service: LocalService, tmp_path: Path
) -> None:
    base = service.data_dir / "models" / "cli-base"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    facts = tmp_path / "facts.jsonl"
    facts.write_text(FACTS)
    file_id = json.loads(cli.invoke(app, ["files", "upload", str(facts)]).output)["id"]

    submitted = cli.invoke(
        app, ["jobs", "create", "--lineage", "cli-base", "--suffix", "cli-new", "--file", file_id]
    )

    assert submitted.exit_code == 0, submitted.output
    job = json.loads(cli.invoke(app, ["jobs", "get", submitted.output.strip(), "--json"]).output)
    assert job["model"] == "cli-new" and job["suffix"] == "cli-new"
    assert json.loads(cli.invoke(app, ["lineages", "get", "cli-new"]).output)["base_model"] == str(
        base.resolve()
    )
    clash = cli.invoke(
        app, ["jobs", "create", "--lineage", "cli-base", "--suffix", "Bad Name", "--file", file_id]
    )
    assert clash.exit_code == 1 and "param: suffix" in clash.stderr and "Traceback" not in clash.output


def test_jobs_pause_and_resume(cli: CliRunner, tmp_path: Path) -> None:
    job_id = _queued_job(cli, tmp_path, "paused-bot")

    paused = cli.invoke(app, ["jobs", "pause", job_id])
    assert paused.exit_code == 0 and paused.output.strip() == "paused"
    again = cli.invoke(app, ["jobs", "pause", job_id])
    assert again.exit_code == 1 and "Traceback" not in again.output
    (line,) = again.stderr.splitlines()
    assert line.startswith("error: HTTP 409") and "paused" in line
    assert cli.invoke(app, ["jobs", "resume", job_id]).output.strip() == "queued"
    cli.invoke(app, ["jobs", "cancel", job_id])
    finished = cli.invoke(app, ["jobs", "resume", job_id])
    assert finished.exit_code == 1 and "already finished" in finished.stderr


def test_url_and_key_options_override_the_environment(
    cli: CliRunner, service: LocalService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEUROPLAST_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NEUROPLAST_API_KEY", "np_wrong_key")
    assert cli.invoke(app, ["lineages", "list"]).exit_code == 3
    with_url = cli.invoke(app, ["lineages", "list", "--url", service.url])
    assert with_url.exit_code == 1 and "HTTP 401" in with_url.stderr
    both = cli.invoke(app, ["lineages", "list", "--url", service.url, "--api-key", service.key])
    assert both.exit_code == 0, both.output


def test_without_a_key_the_data_folders_dev_key_is_used(
    cli: CliRunner, service: LocalService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NEUROPLAST_API_KEY")
    assert cli.invoke(app, ["jobs", "list", "--data-dir", str(service.data_dir)]).exit_code == 0
    monkeypatch.setenv("NEUROPLAST_DATA_DIR", str(service.data_dir))
    assert cli.invoke(app, ["jobs", "list"]).exit_code == 0
    keyless = cli.invoke(app, ["jobs", "list", "--data-dir", str(tmp_path)])  # no dev-key there
    assert keyless.exit_code == 1
    assert "HTTP 401" in keyless.stderr and "set NEUROPLAST_API_KEY or --api-key" in keyless.stderr


def _queued_job(cli: CliRunner, tmp_path: Path, lineage: str) -> str:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(FACTS)
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "config.json").write_text("{}")
    file_id = json.loads(cli.invoke(app, ["files", "upload", str(facts)]).output)["id"]
    cli.invoke(app, ["lineages", "create", lineage, "--base-model", str(tmp_path / "base")])
    return cli.invoke(app, ["jobs", "create", "--lineage", lineage, "--file", file_id]).output.strip()


def _lineage_with_versions(
    cli: CliRunner, service: LocalService, tmp_path: Path, name: str, versions: int
) -> None:
    """A lineage with `versions` published versions, the newest promoted, as a worker would leave it."""
    (tmp_path / "base").mkdir(exist_ok=True)
    (tmp_path / "base" / "config.json").write_text("{}")
    config = '{"r": 4}'
    created = cli.invoke(
        app, ["lineages", "create", name, "--base-model", str(tmp_path / "base"), "--config", config]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["method"]["lora"]["r"] == 4
    with _database(service).session() as session:
        lineage = session.query(Lineage).filter_by(name=name).one()
        for number in range(1, versions + 1):
            session.add(
                Version(
                    lineage_pk=lineage.pk,
                    number=number,
                    parent_number=number - 1 or None,
                    job_id=f"ftjob-{name}-{number}",
                    status="promoted" if number == versions else "retired",
                    path=f"/store/{name}/v{number}",
                    metrics={},
                    promoted_at=time.time() - versions + number,
                )
            )
        lineage.promoted_version = versions


def _report(service: LocalService, name: str) -> str:
    """Record a health report of the lineage's v1 with no suites, as the evaluator would store one."""
    report_id = f"rep-{name}"
    body = {
        "id": report_id,
        "object": "health_report",
        "lineage": name,
        "version": 1,
        "reference_version": 0,
        "verdict": "ok",
        "origin": "manual",
        "created_at": int(time.time()),
        "suites": {},
    }
    with _database(service).session() as session:
        lineage = session.query(Lineage).filter_by(name=name).one()
        session.add(
            Report(
                id=report_id,
                tenant_pk=lineage.tenant_pk,
                lineage_pk=lineage.pk,
                version=1,
                verdict="ok",
                body=body,
                path=f"/store/{name}/reports/{report_id}",
            )
        )
    return report_id


def _database(service: LocalService) -> Database:
    return Database(Settings(data_dir=service.data_dir).resolved_database_url)


def test_a_dpo_job_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    pairs = Path(__file__).resolve().parents[3] / "examples" / "preferences-concise.jsonl"
    file_id = json.loads(cli.invoke(app, ["files", "upload", str(pairs)]).output)["id"]
    cli.invoke(app, ["lineages", "create", "cli-dpo", "--base-model", str(tmp_path / "base")])

    submitted = cli.invoke(
        app,
        ["jobs", "create", "--lineage", "cli-dpo", "--file", file_id, "--method", "dpo", "--beta", "0.3"],
    )

    assert submitted.exit_code == 0, submitted.output
    job = json.loads(cli.invoke(app, ["jobs", "get", submitted.output.strip(), "--json"]).output)
    assert job["method"]["type"] == "dpo" and job["method"]["dpo"]["hyperparameters"]["beta"] == 0.3
    cli.invoke(app, ["jobs", "cancel", job["id"]])
    supervised = cli.invoke(app, ["jobs", "create", "--lineage", "cli-dpo", "--file", file_id])
    assert supervised.exit_code == 1 and "param: training_file" in supervised.stderr
    unknown = cli.invoke(
        app, ["jobs", "create", "--lineage", "cli-dpo", "--file", file_id, "--method", "ppo"]
    )
    assert unknown.exit_code == 2 and "'ppo' is not one of supervised, dpo" in unknown.output
