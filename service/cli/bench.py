"""`neuroplast bench ...`: the project's benchmarks, run from a checkout (they write docs/benchmarks.md).

Each subcommand hands its arguments to the benchmark's own module (`python -m bench.<name> ...`,
whose `--help` lists them), in the repository root, and exits with its status. The benchmarks
import torch; the `neuroplast` process itself does not.
"""

import subprocess
import sys
from pathlib import Path

import typer

from service.cli.errors import API_ERROR, fail

__all__ = ["bench"]

ROOT = Path(__file__).resolve().parents[2]  # the checkout an editable install points into

bench = typer.Typer(
    help="Run a benchmark from a checkout of the repository; it writes its section of docs/benchmarks.md.",
    no_args_is_help=True,
)
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@bench.command("cl", context_settings=_PASS_THROUGH)
def continual_learning(context: typer.Context) -> None:
    """The continual-learning benchmark on the real model (`python -m bench.cl`; `--help` for its options)."""
    _run("bench.cl", context.args)


def _run(module: str, arguments: list[str]) -> None:
    if not (ROOT / module.replace(".", "/")).exists():
        fail(f"{module} is not here: the benchmarks run from a checkout of the repository", API_ERROR)
    raise typer.Exit(subprocess.run([sys.executable, "-m", module, *arguments], cwd=ROOT).returncode)
