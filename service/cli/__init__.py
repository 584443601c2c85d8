"""The `neuroplast` command line: run the service and its workers, and use its API."""

import typer

from service.cli import resources, server

app = typer.Typer(help="Neuroplast: continual fine-tuning service for LLMs.", no_args_is_help=True)
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
app.command()(server.demo)
app.add_typer(server.keys, name="keys")
app.add_typer(server.base, name="base")
app.add_typer(resources.files, name="files")
app.add_typer(resources.lineages, name="lineages")
app.add_typer(resources.jobs, name="jobs")

__all__ = ["app"]
