"""How `neuroplast` fails: one line on stderr and an exit code a script can branch on, never a traceback.

Exit codes:
    0: done.
    1: the API answered with an error (its message and the field at fault are printed), or a
       followed job ended other than succeeded, or a local command failed.
    2: a usage error: an unknown command or option, a value not among the choices, bad JSON.
    3: the API could not be reached (connection refused, name not resolved, timed out).
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import httpx
import typer
from typer.core import TyperGroup

from service.client import ApiError

API_ERROR = 1
USAGE = 2
CANNOT_CONNECT = 3

# Click's usage error, as typer raises it: newer typers vendor click, so it is taken from typer.
UsageError: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "UsageError"
)


def fail(message: str, code: int) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def api_errors(url: str, key_given: bool) -> Iterator[None]:
    """Turn the API's error answers and transport failures into one line and exit code 1 or 3."""
    try:
        yield
    except ApiError as error:
        hint = (
            " (no API key: set NEUROPLAST_API_KEY or --api-key)"
            if error.status == 401 and not key_given
            else ""
        )
        fail(f"{error}{hint}", API_ERROR)
    except httpx.TransportError as error:
        reason = str(error) or type(error).__name__
        fail(
            f"cannot reach the API at {url} ({reason}); is `neuroplast serve` running? "
            "Set --url or NEUROPLAST_URL.",
            CANNOT_CONNECT,
        )


def json_object(value: str | dict[str, Any]) -> dict[str, Any]:
    """Parse an option's JSON object, refusing anything else with the parser's reason."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(
            f"not JSON: {error.msg} at column {error.colno} (e.g. '{{\"r\": 16}}')"
        ) from error
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object (e.g. '{\"r\": 16}')")
    return parsed


def one_of(choices: tuple[str, ...] | list[str]) -> Callable[[Any], Any]:
    """An option callback that accepts only `choices` (each value of a repeatable option too).

    Checked while the command line is parsed, so a wrong name fails before anything heavy is imported.
    """

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item not in choices:
                raise typer.BadParameter(f"{item!r} is not one of {', '.join(choices)}")
        return value

    return check


class OneLineErrors(TyperGroup):
    """The root command: usage errors of any subcommand print one line and exit 2 (not a help box)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors():
            return super().invoke(ctx)


@contextmanager
def _usage_errors() -> Iterator[None]:
    try:
        yield
    except UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            raise  # `neuroplast jobs` alone: the help, as usual
        ctx = getattr(error, "ctx", None)
        command = f" (see `{ctx.command_path} --help`)" if ctx else ""
        fail(f"{error.format_message()}{command}", USAGE)  # type: ignore[attr-defined]
