"""Which API the commands talk to, with which key, and the decorator that gives each command both.

The URL and key come from NEUROPLAST_URL and NEUROPLAST_API_KEY, which --url and --api-key
override. With no key at all, the dev key that `neuroplast serve --dev-key` wrote to its data
folder (--data-dir, else NEUROPLAST_DATA_DIR, else the server's default) is used, so a developer
on the service's machine needs no setup.
"""

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.errors import api_errors
from service.client import Client
from service.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000"
PANEL = "Connection"

Url = Annotated[
    str | None,
    typer.Option(
        envvar="NEUROPLAST_URL", help=f"The API's address; {DEFAULT_URL} if unset.", rich_help_panel=PANEL
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        envvar="NEUROPLAST_API_KEY",
        show_envvar=True,
        help="API key; if none, the dev key in the data folder.",
        rich_help_panel=PANEL,
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Data folder whose dev-key to use when no key is given. Env: NEUROPLAST_DATA_DIR.",
        rich_help_panel=PANEL,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a summary.")]

CONNECTION = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in (("url", Url), ("api_key", ApiKey), ("data_dir", DataDir))
]


def api_command(group: typer.Typer, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `function(client, ...)` as the command `name` of `group`.

    The command gets --url, --api-key and --data-dir besides the function's own options, and the
    function a connected `Client`; API errors and an unreachable API end it with one line and
    exit code 1 or 3 (`service.cli.errors`).
    """

    def register(function: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(function).parameters.values())[1:]  # all but `client`

        @functools.wraps(function)
        def command(*, url: str | None, api_key: str | None, data_dir: Path | None, **options: Any) -> None:
            key = api_key or dev_key(data_dir)
            client = Client(url or DEFAULT_URL, key or "")
            with api_errors(client.url, key_given=bool(key)):
                function(client, **options)

        command.__signature__ = inspect.Signature([*own, *CONNECTION])  # type: ignore[attr-defined]
        command.__annotations__ = {parameter.name: parameter.annotation for parameter in [*own, *CONNECTION]}
        group.command(name)(command)
        return function

    return register


def dev_key(data_dir: Path | None) -> str | None:
    """The key `neuroplast serve --dev-key` wrote to the data folder, if there is one."""
    folder = data_dir or Settings().data_dir
    try:
        return (folder / "dev-key").read_text().strip() or None
    except OSError:
        return None


def show(value: Any) -> None:
    """Print JSON as the API sent it, indented for a person and parseable by `jq`."""
    typer.echo(json.dumps(value, indent=2))
