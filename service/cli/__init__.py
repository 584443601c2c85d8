"""The `neuroplast` command line: run the service and its workers, and use its API.

Errors print one line on stderr and exit 1 (the API refused), 2 (usage) or 3 (API unreachable):
see `service.cli.errors`.
"""

import typer

from service.cli import resources, server
from service.cli.bench import bench
from service.cli.errors import OneLineErrors

app = typer.Typer(
    cls=OneLineErrors,
    help="Neuroplast: continual fine-tuning service for LLMs. Exit codes: 0 done, 1 the API answered "
    "with an error (or a followed job did not succeed), 2 usage error, 3 the API could not be reached.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
app.command()(server.demo)
app.add_typer(server.keys, name="keys")
app.add_typer(server.base, name="base")
app.add_typer(resources.files, name="files")
app.add_typer(resources.lineages, name="lineages")
app.add_typer(resources.jobs, name="jobs")
app.add_typer(resources.health, name="health")
app.add_typer(resources.reports, name="reports")
app.add_typer(bench, name="bench")

__all__ = ["app"]
