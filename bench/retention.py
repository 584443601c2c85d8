"""Recall against recognition under interference (Orhan, arXiv 2303.17557); the cost of continual evaluation.

`python -m bench.retention` (also part of `python -m bench`). On the `small` base, a `lora`
lineage learns 24 facts (job 1, 6 of them held out as novel foils), then 24 other facts (job 2).
Job 2's continual evaluator scores job 1's probes on Orhan's log-spaced schedule (steps 1-10,
every 10 to 100, every 100 after): recall (greedy exact match of the held-back continuation)
and recognition (seen fact against its foil by mean NLL). Jobs run as workers run them:
`python -m trainers.run` on a spec, with the probes the control plane would draw.

The cost half times job 2 again with continual evaluation at the default interval
(`EvaluationConfig`: every 25 steps, 16 probes per job) and with none.
"""

import json
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.jobs import job_spec, run_job
from bench.report import machine, write_section
from eval.probes import ProbeSizes, build_probes
from trainers.base_model.corpus import fact_set
from trainers.contracts.job import ContinualEvalSpec
from trainers.contracts.lines import Evaluation
from trainers.contracts.methods import Method

WORKDIR = Path(".bench/retention")
BASE = Path(".bench/base-small")
PLOT = Path("docs/images/retention-curve.png")
STEPS = 300  # per job: enough to teach the small base 24 facts (docs/training.md)
SEEDS = 2
COST_RUNS = 2
DEFAULT_EVERY, DEFAULT_ITEMS = 25, 16  # service.schemas.lineages.EvaluationConfig's defaults
SIZES = ProbeSizes(recall=32, recognition=32, held_out_fraction=0.25)


def main(argv: list[str] | None = None) -> None:
    """Both halves; `--curve` or `--cost` runs one and keeps the other's last results."""
    args = set(sys.argv[1:] if argv is None else argv)
    _ensure_base()
    results = WORKDIR / "results.json"
    saved = json.loads(results.read_text()) if results.exists() else {"curves": [], "cost": None}
    if "--curve" in args or not args:
        saved["curves"] = []
        for seed in range(SEEDS):
            print(f"retention curve, seed {seed} ...", flush=True)
            saved["curves"].append(_curve(seed))
        results.write_text(json.dumps(saved, indent=1))
    if "--cost" in args or not args:
        print("cost of continual evaluation ...", flush=True)
        saved["cost"] = _cost()
        results.write_text(json.dumps(saved, indent=1))
    _plot(saved["curves"])
    write_section("retention", _section(saved["curves"], saved["cost"]))
    print(f"wrote the retention section and {PLOT}")


def _curve(seed: int) -> list[dict[str, Any]]:
    """Job 1's recall and recognition at each evaluation of job 2 (step 0: before job 2 trained)."""
    lineage = WORKDIR / f"seed{seed}"
    v1 = _job(lineage, 1, seed, fact_set("harbour-people", n=24, seed=seed), None, None)
    evaluations = _job(
        lineage,
        2,
        seed,
        fact_set("orchard-people", n=24, seed=seed),
        v1,
        ContinualEvalSpec(every="log", items=32, earlier={}, current="", recognition=True),
    )["evaluations"]
    job1 = f"ftjob-{lineage.name}-1"
    return [
        {"step": e.step, "recall": e.accuracy[job1], "recognition": e.recognition[job1]} for e in evaluations
    ]


def _cost() -> dict[str, float]:
    """Wall time of job 2 with continual evaluation at the default interval and without."""
    lineage = WORKDIR / "cost"
    v1 = _job(lineage, 1, 0, fact_set("harbour-people", n=24, seed=0), None, None)["dir"]
    seconds: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(COST_RUNS):
        for name, continual in (
            ("with", ContinualEvalSpec(every=DEFAULT_EVERY, items=DEFAULT_ITEMS, earlier={}, current="")),
            ("without", None),
        ):
            run = _job(lineage, 2, 0, fact_set("orchard-people", n=24, seed=0), v1, continual)
            seconds[name].append(run["seconds"])
    with_eval, without = statistics.median(seconds["with"]), statistics.median(seconds["without"])
    return {"with_s": with_eval, "without_s": without, "overhead": with_eval / without - 1}


def _job(
    lineage: Path,
    number: int,
    seed: int,
    rows: list[dict[str, str]],
    parent: dict[str, Any] | Path | None,
    continual: ContinualEvalSpec | None,
) -> dict[str, Any]:
    """Run one job as a worker would; its folder, wall seconds and continual evaluations."""
    parent_dir = parent["dir"] if isinstance(parent, dict) else parent
    output = lineage / f"v{number}"
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    data = lineage / f"job{number}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    probes = build_probes(rows, seed, SIZES)
    (output / "probes.json").write_text(json.dumps(probes.to_json()))
    if continual is not None:
        earlier = {f"ftjob-{lineage.name}-1": str(parent_dir / "probes.json")}  # type: ignore[operator]
        continual = replace(continual, earlier=earlier, current=str(output / "probes.json"))
    spec = job_spec(
        output,
        BASE,
        data,
        steps=STEPS,
        # No warm-up: interference starts at full rate, as in Orhan's retention runs.
        method=Method.resolve("lora", {"warmup_ratio": 0.0}),
        parent_dir=parent_dir,
        version=number,
        job_id=f"ftjob-{lineage.name}-{number}",
        lineage=lineage.name,
        seed=seed,
        cache_dir=WORKDIR / "cache",
        held_out_rows=probes.held_out_rows,
        continual_eval=continual,
    )
    run = run_job(spec)
    if run.returncode != 0:
        raise RuntimeError(f"{spec.job_id} failed: {run.stderr.strip().splitlines()[-1:]}")
    return {"dir": output, "seconds": run.seconds, "evaluations": run.typed(Evaluation)}


def _ensure_base() -> None:
    if not (BASE / "config.json").exists():
        from trainers.base_model.build import build_base

        build_base(BASE, preset="small")


def _mean_curve(curves: list[list[dict[str, Any]]], key: str) -> list[float]:
    return [statistics.mean(curve[i][key] for curve in curves) for i in range(len(curves[0]))]


def _plot(curves: list[list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [point["step"] for point in curves[0]]
    x = [max(step, 0.5) for step in steps]  # step 0 (before job 2) drawn at 0.5 on the log axis
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for key, label in (
        ("recognition", "recognition (seen vs. foil)"),
        ("recall", "recall (exact continuation)"),
    ):
        axis.plot(x, _mean_curve(curves, key), marker="o", markersize=3, label=label)
    axis.set_xscale("log")
    axis.set_xlabel("updates of job 2 (log scale; 0.5 = before job 2)")
    axis.set_ylabel("job 1's probes")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"Job 1's facts while job 2 trains ({len(curves)} seeds, lora, small base)")
    axis.legend(loc="lower left")
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=110)


def _section(curves: list[list[dict[str, Any]]], cost: dict[str, float]) -> str:
    recall, recognition = _mean_curve(curves, "recall"), _mean_curve(curves, "recognition")
    steps = [point["step"] for point in curves[0]]
    shown = [i for i, step in enumerate(steps) if step in (0, 1, 2, 5, 10, 20, 50, 100, 200, STEPS)]
    rows = "\n".join(f"| {steps[i]} | {recall[i]:.2f} | {recognition[i]:.2f} |" for i in shown)
    first_ten = recall[0] - recall[steps.index(10)]
    rest = recall[steps.index(10)] - recall[-1]
    return f"""## Recall against recognition under interference

`python -m bench.retention` on {machine()}.

A `lora` lineage on the `small` base learns 24 facts (job 1: {STEPS} steps, batch 8; 6 facts
held out as novel foils), then 24 other facts (job 2, {STEPS} steps). Job 2's continual
evaluator scores job 1's probes on Orhan's log-spaced schedule: recall is greedy exact match of
the held-back continuation, recognition the seen fact against its foil (novel / shuffled /
one-word swap) by mean NLL. Mean of {len(curves)} seeds.

![retention curve](images/retention-curve.png)

| updates of job 2 | job 1 recall | job 1 recognition |
|---|---|---|
{rows}

Recall falls by {first_ten:.2f} over the first 10 updates and by {rest:.2f} over the remaining
{STEPS - 10}; recognition stays at {min(recognition):.2f} or above: as Orhan reports, recognition is
far more robust to interference than recall, and recall's loss is steepest over the first updates.

### Cost of continual evaluation

Job 2 timed as a whole trainer process (start-up, {STEPS} steps, export), median of {COST_RUNS}
runs: {cost["with_s"]:.1f} s with continual evaluation at the default interval (every
{DEFAULT_EVERY} steps, {DEFAULT_ITEMS} recall probes per job)
against {cost["without_s"]:.1f} s without: **{100 * cost["overhead"]:+.1f}%** (target at most +15%).
"""


if __name__ == "__main__":
    main()
