"""`neuroplast bench`: benchmarks of the training plane, run on the machine that trains.

The command imports torch only inside itself (`eval.cl_report`), so the control plane's CLI
stays torch-free.
"""

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

bench = typer.Typer(help="Run benchmarks (train real models on this machine).", no_args_is_help=True)


@bench.command("cl")
def continual_learning(
    methods: Annotated[str, typer.Option(help="Comma-separated method names.")] = "lora,replay,ilora",
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per method (mean and spread).")] = 3,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per task.")] = 100,
    base: Annotated[
        Path, typer.Option(help="Base model folder; the small preset is built there if missing.")
    ] = Path(".bench/base-small"),
    workdir: Annotated[Path, typer.Option(help="Scratch folder for lineages and data.")] = Path(".bench/cl"),
    plot: Annotated[Path, typer.Option(help="Retention plot (PNG).")] = Path("docs/images/retention.png"),
    reuse: Annotated[
        Path | None,
        typer.Option(help="matrices.json of an earlier run: its other methods are reported, not rerun."),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            min=1, help="Lineages trained at once; on a small machine run it with OMP_NUM_THREADS=1."
        ),
    ] = 1,
    section: Annotated[
        str, typer.Option(help="Section of docs/benchmarks.md the report replaces.")
    ] = "continual-learning",
) -> None:
    """Continual-learning benchmark: forgetting of each method over a stream of generated tasks."""
    from eval.cl_report import run_and_report

    markdown = run_and_report(
        methods.split(","),
        seeds,
        base,
        workdir,
        plot,
        steps=steps,
        reuse=reuse,
        parallel=parallel,
        command=_command_line(),
    )
    checkout = Path(__file__).resolve().parents[2]  # service/cli/bench.py in a source checkout
    if not (checkout / "bench" / "report.py").exists():  # installed from a wheel: no docs to write
        typer.echo(markdown)
        return
    sys.path.insert(0, str(checkout))  # the console script's path does not hold the checkout
    from bench.report import REPORT, write_section

    write_section(section, markdown)
    typer.echo(f"wrote its section of {REPORT} and {plot}")


def _command_line() -> str:
    """This command as typed, after the thread setting it ran with (it changes the step times)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = [f"OMP_NUM_THREADS={threads}"] if threads else []
    return shlex.join([*prefix, "neuroplast", *sys.argv[1:]])
