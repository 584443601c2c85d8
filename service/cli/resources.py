"""Commands that use the REST API: files, lineages, jobs, health checks and reports.

Each takes --url, --api-key and --data-dir (`service.cli.connection`); each read command takes
--json to print the API's own JSON instead of a summary.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.connection import Json, api_command, show
from service.cli.errors import API_ERROR, json_object, one_of
from service.cli.follow import follow_job
from service.client import Client
from service.schemas.health_checks import DEFAULT_LINK_SECONDS, MAX_LINK_SECONDS, SUITES
from trainers.contracts.methods import available_methods
from trainers.contracts.objectives import OBJECTIVES
from trainers.contracts.statuses import JobStatus

files = typer.Typer(help="Upload, list, show and delete training files.", no_args_is_help=True)
lineages = typer.Typer(
    help="Create and inspect lineages; promote, roll back, see what they retain.", no_args_is_help=True
)
jobs = typer.Typer(
    help="Submit, watch, pause, resume and cancel fine-tuning jobs; read their events and checkpoints.",
    no_args_is_help=True,
)
health = typer.Typer(help="Health checks: evaluate a version against its reference.", no_args_is_help=True)
reports = typer.Typer(help="Health reports.", no_args_is_help=True)

METHODS = available_methods()
Limit = Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")]


@api_command(files, "upload")
def upload(client: Client, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Upload a JSONL training file; every bad line is reported."""
    show(client.upload_file(path))


@api_command(files, "list")
def list_files(client: Client, limit: Limit = 20, json_output: Json = False) -> None:
    """List training files, newest first: id, rows, bytes, name."""
    page = client.files_page(limit)
    if json_output:
        return show(page)
    for row in page["data"]:
        typer.echo(f"{row['id']}  {row['rows'] or 0:>7} rows {row['bytes']:>10} B  {row['filename']}")


@api_command(files, "get")
def get_file(client: Client, file_id: str, json_output: Json = False) -> None:
    """Show a training file (rows, size, share of junk lines)."""
    show(client.get_file(file_id))


@api_command(files, "delete")
def delete_file(client: Client, file_id: str) -> None:
    """Delete a training file (jobs that used it keep their results)."""
    typer.echo(f"deleted {client.delete_file(file_id)['id']}")


@api_command(lineages, "create")
def create_lineage(
    client: Client,
    name: str,
    base_model: Annotated[str, typer.Option(help="HF hub id or local path.")],
    method: Annotated[
        str, typer.Option(callback=one_of(METHODS), help=f"One of: {', '.join(METHODS)}.")
    ] = "lora",
    config: Annotated[
        dict[str, Any],
        typer.Option(parser=json_object, metavar="JSON", help="The method's config as a JSON object."),
    ] = "{}",  # type: ignore[assignment]  # parsed into a dict by json_object
) -> None:
    """Create a lineage: a model that is continually adapted by jobs."""
    show(client.create_lineage(name, base_model, {"type": method, method: config}))


@api_command(lineages, "list")
def list_lineages(client: Client, limit: Limit = 100, json_output: Json = False) -> None:
    """List lineages with their promoted versions."""
    page = client.lineages_page(limit)
    if json_output:
        return show(page)
    for row in page["data"]:
        method, promoted = row["method"]["type"], row["promoted_version"]
        typer.echo(f"{row['name']:24} {method:8} promoted={promoted} base={row['base_model']}")


@api_command(lineages, "get")
def get_lineage(client: Client, name: str, json_output: Json = False) -> None:
    """Show a lineage with its versions (`versions`: the API's list of them)."""
    show({**client.get_lineage(name), "versions": client.list_versions(name)})


@api_command(lineages, "promote")
def promote(
    client: Client,
    name: str,
    version: int,
    force: Annotated[bool, typer.Option(help="Promote a version the health gate rejected.")] = False,
) -> None:
    """Serve a version under the lineage's name (the gateway swaps to it)."""
    _serving(client.promote(name, version, force=force))


@api_command(lineages, "rollback")
def rollback(client: Client, name: str) -> None:
    """Serve the version promoted before the current one again."""
    _serving(client.rollback(name))


@api_command(lineages, "retention")
def retention(client: Client, name: str, json_output: Json = False) -> None:
    """How well each version still knows each job's facts: recall per version and job, and its summary."""
    body = client.retention(name)
    if json_output:
        return show(body)
    recall = body["matrices"].get("recall", [])
    typer.echo("recall  " + " ".join(f"{'v' + str(job['version']):>6}" for job in body["jobs"]))
    for version, row in zip(body["versions"], recall, strict=False):
        typer.echo(f"v{version:<6} " + " ".join("     -" if v is None else f"{v:6.3f}" for v in row))
    for name_, value in (body["summary"].get("recall") or {}).items():
        typer.echo(f"{name_}: {'-' if value is None else f'{value:.3f}'}")


@api_command(jobs, "create")
def create_job(
    client: Client,
    lineage: Annotated[
        str,
        typer.Option(
            help="The lineage to update (LINEAGE@N: from version N), or a base model the service knows, "
            "which starts a lineage named --suffix (docs/jobs.md)."
        ),
    ],
    training_file: Annotated[str, typer.Option("--file", help="A file id from `files upload`.")],
    n_epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate_multiplier: Annotated[float | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option(help="Overrides n_epochs.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    processes: Annotated[
        int | None, typer.Option(help="Trainer processes (one per GPU); the worker's default if unset.")
    ] = None,
    suffix: Annotated[
        str | None, typer.Option(help="Names the lineage a job on a base model starts.")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            callback=one_of(OBJECTIVES),
            help="The training objective (OpenAI's job method, not the lineage's): supervised, or dpo "
            "on a file of preference pairs (docs/jobs.md).",
        ),
    ] = "supervised",
    beta: Annotated[
        float | None, typer.Option(help="dpo: how far the job may move from its parent (auto: 0.1).")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Follow the job with a progress bar.")] = False,
) -> None:
    """Submit a job that teaches a lineage the contents of a training file."""
    chosen = {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
        "max_steps": max_steps,
        "beta": beta,
    }
    hyperparameters = {key: value for key, value in chosen.items() if value is not None}
    training: dict[str, Any] = {"hyperparameters": hyperparameters}
    if method != "supervised" or beta is not None:  # where OpenAI now wants them: inside `method`
        training = {"method": {"type": method, method: {"hyperparameters": hyperparameters}}}
    job = client.create_job(lineage, training_file, seed=seed, processes=processes, suffix=suffix, **training)
    typer.echo(job["id"])
    if follow:
        _finish(follow_job(client, job["id"]))


@api_command(jobs, "list")
def list_jobs(client: Client, limit: Limit = 20, json_output: Json = False) -> None:
    """List jobs, newest first."""
    page = client.jobs_page(limit)
    if json_output:
        return show(page)
    for job in page["data"]:
        typer.echo(f"{job['id']}  {job['status']:10} {job['model']:20} {job['fine_tuned_model'] or ''}")


@api_command(jobs, "get")
def get_job(client: Client, job_id: str, json_output: Json = False) -> None:
    """Show a job."""
    show(client.get_job(job_id))


@api_command(jobs, "events")
def events(client: Client, job_id: str, limit: Limit = 20, json_output: Json = False) -> None:
    """A job's newest events, oldest of them first: time, level, message."""
    page = client.events_page(job_id, limit)
    if json_output:
        return show(page)
    for event in reversed(page["data"]):
        typer.echo(f"{_time(event['created_at'])}  {event['level']:7} {event['message']}")


@api_command(jobs, "checkpoints")
def checkpoints(client: Client, job_id: str, limit: Limit = 10, json_output: Json = False) -> None:
    """A job's checkpoints, newest first: id, step, metrics."""
    page = client.checkpoints_page(job_id, limit)
    if json_output:
        return show(page)
    for row in page["data"]:
        metrics = " ".join(f"{key}={value}" for key, value in row["metrics"].items())
        typer.echo(f"{row['id']}  step {row['step_number']:<6} {metrics}".rstrip())


@api_command(jobs, "follow")
def follow(client: Client, job_id: str) -> None:
    """Follow a job's progress until it ends; exit code 1 unless it succeeded."""
    _finish(follow_job(client, job_id))


@api_command(jobs, "cancel")
def cancel(client: Client, job_id: str) -> None:
    """Cancel a queued or running job."""
    typer.echo(client.cancel_job(job_id)["status"])


@api_command(jobs, "pause")
def pause(client: Client, job_id: str) -> None:
    """Pause a queued or running job; it keeps its checkpoints (`jobs resume` continues from them)."""
    typer.echo(client.pause_job(job_id)["status"])


@api_command(jobs, "resume")
def resume(client: Client, job_id: str) -> None:
    """Queue a paused job again; it resumes from its newest checkpoint."""
    typer.echo(client.resume_job(job_id)["status"])


@api_command(health, "run")
def run_health_check(
    client: Client,
    lineage: Annotated[str, typer.Option(help="The lineage to check.")],
    version: Annotated[int | None, typer.Option(help="The version; the promoted one if unset.")] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option(
            callback=one_of(SUITES), help=f"A suite (repeatable), one of: {', '.join(SUITES)}; all if unset."
        ),
    ] = None,
) -> None:
    """Queue a health check of a version; prints its id (`health get ID` shows its verdict)."""
    typer.echo(client.create_health_check(lineage, version, suite)["id"])


@api_command(health, "get")
def get_health_check(client: Client, check_id: str, json_output: Json = False) -> None:
    """Show a health check: status, then verdict and report once it ran."""
    check = client.get_health_check(check_id)
    if json_output:
        return show(check)
    typer.echo(_health_check_line(check))


@api_command(health, "list")
def list_health_checks(
    client: Client,
    lineage: Annotated[str | None, typer.Option(help="Only this lineage's checks.")] = None,
    limit: Limit = 20,
    json_output: Json = False,
) -> None:
    """List health checks, newest first: id, version, status, verdict and report."""
    page = client.health_checks_page(lineage, limit)
    if json_output:
        return show(page)
    for check in page["data"]:
        typer.echo(_health_check_line(check))


@api_command(reports, "open")
def open_report(
    client: Client,
    report_id: str,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the page; REPORT_ID.html if unset.")
    ] = None,
) -> None:
    """Write a health report's HTML page (self-contained: open it in any browser) and print its path."""
    path = out or Path(f"{report_id}.html")
    page = client.report_html(report_id)
    path.write_text(page)
    typer.echo(path.resolve())


@api_command(reports, "link")
def report_link(
    client: Client,
    report_id: str,
    expires_in: Annotated[
        int, typer.Option(min=1, max=MAX_LINK_SECONDS, help="Seconds the link stays valid.")
    ] = DEFAULT_LINK_SECONDS,
) -> None:
    """Print a short-lived signed link to a health report's page: any browser opens it, no key needed."""
    typer.echo(client.report_link(report_id, expires_in)["url"])


def _health_check_line(check: dict[str, Any]) -> str:
    verdict = (check["result"] or {}).get("verdict")
    line = f"{check['id']}  {check['lineage']}@{check['version']} {check['status']}"
    line += f" verdict={verdict}" if verdict else ""
    line += f" report={check['report_id']}" if check["report_id"] else ""
    line += f" error={check['error'].get('message')}" if check["error"] else ""
    return line


def _serving(serving: dict[str, Any]) -> None:
    served = serving["served_version"]
    where = f"served v{served}, swap {serving['swap_seconds']:.2f} s" if served else "no serving tier"
    typer.echo(f"{serving['lineage']}: promoted v{serving['promoted_version']} ({where})")


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _finish(job: dict[str, Any]) -> None:
    typer.echo(f"{job['id']}: {job['status']} {job['fine_tuned_model'] or ''}".rstrip())
    if job["status"] != JobStatus.SUCCEEDED:
        raise typer.Exit(API_ERROR)
