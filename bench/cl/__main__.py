"""`python -m bench.cl` (or `neuroplast bench cl`): the continual-learning benchmark on a real base model.

    OMP_NUM_THREADS=1 python -m bench.cl --family test --variants lora,replay,ilora,trc --seeds 5

teaches each family's three tasks (`bench/cl/streams.py`) to one lineage per variant and seed
(`bench/cl/protocol.py`), then writes its section of docs/benchmarks.md and one stability-gap
figure per family. Each finished lineage leaves its record in `bench/cl/results/` (committed, so
the tables can be written again on any checkout); lineages with a record are read back, not
trained again, so an interrupted run goes on where it stopped. Run it from the repository root,
on a machine that trains.
"""

import argparse
import multiprocessing
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cl.streams import FAMILIES, family
from bench.cl.variants import VARIANTS
from bench.report import REPORT, machine, write_section
from eval.panel import PANEL_SUITES

if TYPE_CHECKING:  # torch comes in only once the arguments are read
    from bench.cl.protocol import LineageResult

RESULTS = Path(__file__).parent / "results"
DEFAULT_VARIANTS = "lora,replay-0.25,replay,replay-1.0,replay-distill,ewc,multitask,ilora,titans,trc"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cl", description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=[*FAMILIES, "both"], default="both", help="task family")
    parser.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (each: tasks, order, training)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per job (batch 8)")
    parser.add_argument(
        "--base", type=Path, default=Path(".bench/real-model/base-smollm2"), help="base model folder"
    )
    parser.add_argument("--workdir", type=Path, default=Path(".bench/cl-real"), help="scratch folder")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="finished lineages' records, one JSON file each"
    )
    parser.add_argument(
        "--panel",
        default=",".join(PANEL_SUITES),
        help="health-panel suites run on the base and each lineage's last version ('' for none)",
    )
    parser.add_argument("--parallel", type=int, default=1, help="lineages trained at once")
    parser.add_argument("--section", default="continual-learning-real", help="section of docs/benchmarks.md")
    parser.add_argument("--report-only", action="store_true", help="write the section from finished lineages")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if unknown := [name for name in variants if name not in VARIANTS]:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    panel = tuple(suite for suite in args.panel.split(",") if suite)
    if unknown := [suite for suite in panel if suite not in PANEL_SUITES]:
        parser.error(f"unknown panel suites {unknown}; choose from {', '.join(PANEL_SUITES)}")
    if args.seeds < 1 or args.steps < 1 or args.parallel < 1:
        parser.error("--seeds, --steps and --parallel must be at least 1")
    if not (args.base / "config.json").exists():
        parser.error(
            f"no base model in {args.base}: `neuroplast base fetch smollm2-135m-instruct --out {args.base}`"
        )
    families = list(FAMILIES) if args.family == "both" else [args.family]
    # Seed-major, test family first: an interrupted run has every variant's first seeds.
    work = [(f, v, s) for s in range(args.seeds) for f in sorted(families, reverse=True) for v in variants]
    from bench.cl.report import markdown, plot_stability_gap

    results = _finished(args.results, work) if args.report_only else _run(work, args)
    plots = {}
    for name in families:
        plots[name] = Path(f"docs/images/stability-gap-{name}.png")
        plot_stability_gap(results, name, plots[name])
    write_section(
        args.section, markdown(results, f"{_header(args, argv)}\n{_coverage(work, results)}", plots)
    )
    print(f"wrote its section of {REPORT} and {', '.join(map(str, plots.values()))}")


def _run(work: list[tuple[str, str, int]], args: argparse.Namespace) -> list["LineageResult"]:
    """Train the lineages not finished yet, `args.parallel` at once, each in a process of its own
    (transformers' model loading is not thread-safe, and a lineage's scoring is Python-bound).

    Returns the finished lineages in the order asked; one that fails is reported and left out,
    and the others go on.
    """
    from bench.cl.protocol import run_lineage  # importable by name in the spawned processes

    panel = tuple(suite for suite in args.panel.split(",") if suite)
    settings = dict(base_model=args.base, workdir=args.workdir, steps=args.steps, records=args.results)
    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_lineage, *item, panel=panel, **settings): item for item in work}
        for future in as_completed(futures):
            family_name, variant, seed = futures[future]
            if error := future.exception():
                print(f"{family_name} {variant} seed {seed}: failed: {error!r}", flush=True)
            else:
                final = [round(score, 2) for score in future.result().matrix[-1]]
                print(f"{family_name} {variant} seed {seed}: final row {final}", flush=True)
    return [future.result() for future in futures if not future.exception()]


def _finished(records: Path, work: list[tuple[str, str, int]]) -> list["LineageResult"]:
    from bench.cl.protocol import LineageResult, record_path

    paths = [record_path(records, *item) for item in work]
    return [LineageResult.load(path) for path in paths if path.exists()]


def _coverage(work: list[tuple[str, str, int]], results: list["LineageResult"]) -> str:
    """How many of the lineages asked have a record, and which seeds each variant still lacks."""
    done = {(result.family, result.variant, result.seed) for result in results}
    missing: dict[tuple[str, str], list[int]] = {}
    for family_name, variant, seed in work:
        if (family_name, variant, seed) not in done:
            missing.setdefault((family_name, variant), []).append(seed)
    ran = f"{len(work) - sum(map(len, missing.values()))} of the {len(work)} lineages asked have run"
    if not missing:
        return f"{ran}."
    lacking = "; ".join(
        f"{family_name} `{variant}` {'seed' + 's' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
        for (family_name, variant), seeds in missing.items()
    )
    return f"{ran}; not yet: {lacking}."


def _header(args: argparse.Namespace, argv: list[str] | None) -> str:
    from bench.cl.protocol import DENSE_STEPS, EVAL_EVERY

    threads = os.environ.get("OMP_NUM_THREADS")
    command = shlex.join(
        [
            *([f"OMP_NUM_THREADS={threads}"] if threads else []),
            "python",
            "-m",
            "bench.cl",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
    tasks = "; ".join(
        f"{name}: "
        + ", ".join(
            f"`{t.name}` ({t.kind}, {len(t.train)} rows, {len(t.test)} test items)" for t in family(name)
        )
        for name in FAMILIES
    )
    return f"""## Continual learning on the real model: held-out probes, two families, fair baselines

`{command}` on {machine()}.
Base: `{args.base}`. Each lineage learns its family's three tasks in one of three orders (seed mod
3 picks the rotation), one job of {args.steps} steps of batch 8 per task, method defaults unless
the variant says otherwise. Tasks ({tasks}). Scores are greedy exact match on *test* probes
that no job trains on: facts and prose asked back in a phrasing never taught, skills on new
items. While a job trains, its continual evaluation (what `trc`'s controller reads) uses the
separate *validation* probes, after each of the first {DENSE_STEPS} steps and every {EVAL_EVERY} after.
Means over seeds with 95% t intervals. ACC: mean final accuracy over the three tasks; forgetting:
Chaudhry's F (best minus final, earlier tasks); ÷ lora: the ratio of mean forgettings, same seeds;
final task: the last task right after its job; FWT: accuracy of a task just before its job minus
the base's; min-ACC: earlier tasks' lowest validation accuracy over the stream (the tracker spans
jobs); tokens and seconds per step are per job (replayed rows included in the trained tokens;
seconds exclude the continual evaluations); panel change: the health panel's suites from the
base to the last version ({", ".join(args.panel.split(","))}; points, perplexity in nats).
"""


if __name__ == "__main__":
    main()
