"""`python -m bench.continual`: the continual-learning benchmark, its markdown table and retention plot.

    python -m bench.continual --methods lora,replay,ilora --seeds 3

trains the lineages of `bench.continual_stream` (on the `small` base, built on first use), measures
the step cost of each method against `lora`'s, writes the retention plot and replaces its section
of docs/benchmarks.md. Run it from the repository root, on a machine that trains.
"""

import argparse
import json
import os
import platform
import shlex
import sys
from datetime import date
from pathlib import Path

from bench.continual_stream import (
    BATCH_SIZE,
    LEARNING_RATE_MULTIPLIER,
    STEPS,
    MethodResult,
    default_stream,
    run_benchmark,
    step_times,
    summary,
)
from bench.report import REPORT, write_section
from eval.metrics import continual_metrics

__all__ = ["main", "plot_retention", "report", "run_and_report"]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and write its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.continual", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora,replay,ilora", help="comma-separated methods or variants")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (mean and spread)")
    parser.add_argument("--steps", type=int, default=STEPS, help="optimizer steps per task")
    parser.add_argument("--base", type=Path, default=Path(".bench/base-small"), help="base model folder")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/cl"), help="scratch folder")
    parser.add_argument("--plot", type=Path, default=Path("docs/images/retention.png"), help="retention PNG")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="matrices.json of an earlier run: its other methods are reported, not rerun",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="lineages trained at once (with OMP_NUM_THREADS=1 on few cores)",
    )
    parser.add_argument("--section", default="continual-learning", help="section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or args.parallel < 1:
        parser.error("--seeds, --steps and --parallel must be at least 1")
    markdown = run_and_report(
        args.methods.split(","),
        args.seeds,
        args.base,
        args.workdir,
        args.plot,
        steps=args.steps,
        reuse=args.reuse,
        parallel=args.parallel,
        command=_command_line(argv),
    )
    write_section(args.section, markdown)
    print(f"wrote its section of {REPORT} and {args.plot}")


def _command_line(argv: list[str] | None) -> str:
    """This command as typed, after the thread setting it ran with (it changes the step times)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = [f"OMP_NUM_THREADS={threads}"] if threads else []
    return shlex.join([*prefix, "python", "-m", "bench.continual", *(sys.argv[1:] if argv is None else argv)])


def run_and_report(
    methods: list[str],
    seeds: int,
    base_model: Path,
    workdir: Path,
    plot: Path,
    steps: int = STEPS,
    reuse: Path | None = None,
    parallel: int = 1,
    command: str = "",
) -> str:
    """Run the benchmark and the cost measurement; write the plot; return the markdown section.

    Args:
        methods: Method names (or `bench.continual_stream.VARIANTS`).
        seeds: Seeds per method.
        base_model: Base model folder; the `small` preset is built there when it is missing.
        workdir: Scratch folder for lineages and data.
        plot: Where the retention PNG goes.
        steps: Optimizer steps per task.
        reuse: A `matrices.json` of an earlier run with the same stream, steps and seeds: its
            methods that `methods` does not name are reported from it, not run again.
        parallel: Lineages trained at once.
        command: The command line that ran it, for the report; by default the plain
            `python -m bench.continual` one for `methods` and `seeds`.
    """
    if not (base_model / "config.json").exists():
        from trainers.base_model.build import build_base

        print(f"building the small base model in {base_model} (about two minutes, once)", flush=True)
        build_base(base_model, preset="small")
    results = run_benchmark(
        methods, seeds, base_model.resolve(), workdir.resolve(), steps=steps, parallel=parallel
    )
    if reuse is not None:
        earlier = {
            method: MethodResult(matrices, [continual_metrics(m) for m in matrices])
            for method, matrices in json.loads(reuse.read_text()).items()
            if method not in results
        }
        results = earlier | results
    print("step time of ilora and trc against lora on the same batch ...", flush=True)
    cost = step_times(base_model)
    print(f"  {cost}", flush=True)
    plot_retention(results, plot)
    command = command or f"python -m bench.continual --methods {','.join(methods)} --seeds {seeds}"
    return report(results, cost, seeds, steps, plot, command)


def report(
    results: dict[str, MethodResult],
    cost: dict[str, float],
    seeds: int,
    steps: int,
    plot: Path,
    command: str,
) -> str:
    """The markdown section: metrics table (mean ± sd over seeds), final matrices' means, cost.

    Args:
        results: Per method, its runs.
        cost: Per method, a training step's median time in ms (`lora`, `ilora`, `trc`).
        seeds: Seeds per method.
        steps: Optimizer steps per task.
        plot: The retention plot.
        command: The command line that produced it.
    """
    tasks = [task.name for task in default_stream()]
    table = summary(results)
    rows = "\n".join(
        f"| `{method}` | "
        + " | ".join(f"{mean:.1f} ± {sd:.1f}" for mean, sd in table[method].values())
        + " |"
        for method in results
    )
    matrices = "\n\n".join(_mean_matrix(method, result, tasks) for method, result in results.items())
    python = platform.python_version()
    machine = f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {python}, no GPU"
    return f"""## Continual learning: {_title(results)}

`{command}` on {machine}.

Stream (`bench/continual_stream.py`): {len(tasks)} tasks taught in order to one lineage per method and
seed, one version per task: {", ".join(f"`{name}`" for name in tasks)} (three sets of 24 facts
about new people, then a 24-row skill task). Each version is a {steps}-step job (batch
{BATCH_SIZE}, learning-rate multiplier {LEARNING_RATE_MULTIPLIER}, each method's default config)
run by `python -m trainers.run` with the previous version as parent, as the service runs jobs.
After each task the published adapter is scored on every task so far: greedy recall, exact match
of the completion (`eval/recall.py`). Metrics (`eval/metrics.py`, percentage points, mean ± sd
over seeds 0-{seeds - 1}): average accuracy after the last task, backward transfer and
forgetting over the {len(tasks) - 1} earlier tasks (GEM / Chaudhry normalisation), the last
task's score, and the area under the forgetting curve (AUFC: the forgetting after each task from
the second on, averaged over the stream; lower is better). Jobs after the first evaluate the
earlier tasks' probes every 10 steps (`trc`'s controller reads that forgetting). `trc-no-*` are
`trc` with its router (uniform mixing of the columns), its hippocampus (no store, read, replay
or distillation) or its controller (fixed replay ratio, distillation weight and consolidation
rate) switched off.

| method | average accuracy | backward transfer | forgetting | final task | AUFC |
|---|---|---|---|---|---|
{rows}
{_trc_targets(table)}
![retention]({os.path.relpath(plot.resolve(), Path("docs").resolve())})

Mean R[after task i][task j] over seeds (recall, %):

{matrices}

Cost: one training step on the same batch (8 new rows + 4 replayed rows, small base, forward
with hidden states, loss, backward, AdamW, the after-step hook; median of 30 alternating steps in
one process): `lora` {cost["lora"]:.1f} ms, `ilora` {cost["ilora"]:.1f} ms
(**{cost["ilora"] / cost["lora"]:.2f}** × `lora`, target at most 1.6), `trc` {cost["trc"]:.1f} ms
(**{cost["trc"] / cost["lora"]:.2f}** × `lora`, target at most 2).
"""


def plot_retention(results: dict[str, MethodResult], path: Path) -> None:
    """Two panels: recall of the first task, and mean recall of the tasks so far, after each task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [task.name for task in default_stream()]
    figure, (first, average) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    x = list(range(1, len(tasks) + 1))
    for method, result in results.items():
        firsts = [[100 * _cell(m, i, 0) for i in range(len(tasks))] for m in result.matrices]
        means = [
            [100 * sum(_cell(m, i, j) for j in range(i + 1)) / (i + 1) for i in range(len(tasks))]
            for m in result.matrices
        ]
        for axis, curves in ((first, firsts), (average, means)):
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(len(tasks))]
            low = [min(c[i] for c in curves) for i in range(len(tasks))]
            high = [max(c[i] for c in curves) for i in range(len(tasks))]
            axis.plot(x, mean, marker="o", label=method)
            axis.fill_between(x, low, high, alpha=0.15)
    first.set_title(f"recall of task 1 ({tasks[0]})")
    average.set_title("mean recall of the tasks learned so far")
    for axis in (first, average):
        axis.set_xticks(x, [f"after {i}" for i in x])
        axis.set_ylim(0, 105)
        axis.grid(alpha=0.3)
    first.set_ylabel("exact-match recall (%)")
    average.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _title(results: dict[str, MethodResult]) -> str:
    if "trc" in results:
        return "`trc` and its ablations against the PEFT methods"
    return "forgetting over a stream of tasks"


def _trc_targets(table: dict[str, dict[str, tuple[float, float]]]) -> str:
    """The `trc` targets against `lora` (forgetting at most half, final task within 5 points)."""
    if "trc" not in table or "lora" not in table:
        return ""
    (forgetting, _), (lora_forgetting, _) = table["trc"]["forgetting"], table["lora"]["forgetting"]
    (final, _), (lora_final, _) = table["trc"]["final_task"], table["lora"]["final_task"]
    return f"""
`trc` forgetting / `lora` forgetting: {forgetting:.1f} / {lora_forgetting:.1f} =
**{forgetting / lora_forgetting:.2f}** (target at most 0.5). Final task: `trc` {final:.1f} against
`lora` {lora_final:.1f}, {final - lora_final:+.1f} points (target: no more than 5 points below).
"""


def _mean_matrix(method: str, result: MethodResult, tasks: list[str]) -> str:
    header = f"| `{method}` | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks)
    lines = []
    for i in range(len(tasks)):
        cells = []
        for j in range(len(tasks)):
            trained = j <= i
            values = [_cell(m, i, j) for m in result.matrices] if trained else []
            cells.append(f"{100 * sum(values) / len(values):.0f}" if trained else "")
        lines.append(f"| after {tasks[i]} | " + " | ".join(cells) + " |")
    return header + "\n" + "\n".join(lines)


def _cell(matrix: list[list[float | None]], i: int, j: int) -> float:
    value = matrix[i][j]
    assert value is not None, f"R[{i}][{j}] was not measured"
    return value


if __name__ == "__main__":
    main()
