"""Commands that use the REST API: files, lineages and jobs. Env: NEUROPLAST_URL, NEUROPLAST_API_KEY."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.follow import follow_job
from service.client import ApiError, Client
from trainers.contracts.statuses import JobStatus

files = typer.Typer(help="Upload and list training files.", no_args_is_help=True)
lineages = typer.Typer(help="Create and inspect lineages.", no_args_is_help=True)
jobs = typer.Typer(help="Submit, watch and cancel fine-tuning jobs.", no_args_is_help=True)


@files.command("upload")
def upload(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Upload a JSONL training file; every bad line is reported."""
    _show(_call(lambda client: client.upload_file(path)))


@lineages.command("create")
def create_lineage(
    name: str,
    base_model: Annotated[str, typer.Option(help="HF hub id or local path.")],
    method: Annotated[str, typer.Option(help="lora | replay | ilora | titans | trc")] = "lora",
    config: Annotated[str, typer.Option(help="The method's config as JSON.")] = "{}",
) -> None:
    """Create a lineage: a model that is continually adapted by jobs."""
    spec = {"type": method, method: json.loads(config)}
    _show(_call(lambda client: client.create_lineage(name, base_model, spec)))


@lineages.command("list")
def list_lineages() -> None:
    """List lineages with their promoted versions."""
    for row in _call(lambda client: client.list_lineages()):
        method, promoted = row["method"]["type"], row["promoted_version"]
        typer.echo(f"{row['name']:24} {method:8} promoted={promoted} base={row['base_model']}")


@lineages.command("get")
def get_lineage(name: str) -> None:
    """Show a lineage and its versions."""
    _show(_call(lambda client: {**client.get_lineage(name), "versions": client.list_versions(name)}))


@jobs.command("create")
def create_job(
    lineage: Annotated[str, typer.Option(help="The lineage to update.")],
    training_file: Annotated[str, typer.Option("--file", help="A file id from `files upload`.")],
    n_epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate_multiplier: Annotated[float | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option(help="Overrides n_epochs.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    processes: Annotated[
        int | None, typer.Option(help="Trainer processes (one per GPU); the worker's default if unset.")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Follow the job with a progress bar.")] = False,
) -> None:
    """Submit a job that teaches a lineage the contents of a training file."""
    chosen = {
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
        "max_steps": max_steps,
    }
    hyperparameters = {key: value for key, value in chosen.items() if value is not None}
    job = _call(
        lambda client: client.create_job(
            lineage, training_file, hyperparameters=hyperparameters, seed=seed, processes=processes
        )
    )
    typer.echo(job["id"])
    if follow:
        _finish(_call(lambda client: follow_job(client, job["id"])))


@jobs.command("list")
def list_jobs(limit: int = 20) -> None:
    """List jobs, newest first."""
    for job in _call(lambda client: client.list_jobs(limit)):
        typer.echo(f"{job['id']}  {job['status']:10} {job['model']:20} {job['fine_tuned_model'] or ''}")


@jobs.command("get")
def get_job(job_id: str) -> None:
    """Show a job."""
    _show(_call(lambda client: client.get_job(job_id)))


@jobs.command("follow")
def follow(job_id: str) -> None:
    """Follow a job's progress until it ends."""
    _finish(_call(lambda client: follow_job(client, job_id)))


@jobs.command("cancel")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    typer.echo(_call(lambda client: client.cancel_job(job_id))["status"])


def _call(action: Any) -> Any:
    try:
        return action(Client())
    except ApiError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _show(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def _finish(job: dict[str, Any]) -> None:
    typer.echo(f"{job['id']}: {job['status']} {job['fine_tuned_model'] or ''}".rstrip())
    if job["status"] != JobStatus.SUCCEEDED:
        raise typer.Exit(1)
