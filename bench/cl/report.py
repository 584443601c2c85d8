"""The continual-learning benchmark's section of docs/benchmarks.md and its stability-gap figure.

Every number is a mean over seeds with a 95% t interval. Forgetting is compared with `lora`'s
seed by seed (the same tasks in the same order), so the interval of a difference is a paired one.
"""

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.cl.protocol import DENSE_STEPS, LineageResult
from bench.cl.variants import VARIANTS
from eval.metrics import continual_metrics, forward_transfer

__all__ = ["MAIN", "markdown", "plot_stability_gap"]

# The comparison; every other variant is an ablation of one of them.
MAIN = (
    "lora",
    *("replay-0.25", "replay", "replay-1.0", "replay-distill"),
    *("ewc", "ewc-10", "ewc-100", "ewc-10000", "ewc-100000"),
    *("ilora", "titans", "trc"),
)
# Each changes one mechanism of its method (`VARIANTS[name].method`), which it is set against.
ABLATIONS = tuple(name for name in VARIANTS if name not in MAIN and name != "multitask")
CONTINUAL = ("ilora", "titans", "trc")  # the methods the goal is set for
REPLAY = ("replay-0.25", "replay", "replay-1.0", "replay-distill")  # tuned replay: the best of these
VERDICT_SEEDS = 3  # paired seeds a verdict needs: with fewer, an interval says nothing
# t quantiles (0.975) by degrees of freedom, for 95% intervals over a handful of seeds.
_T = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval (0 for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = _T.get(len(values) - 1, 1.96)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def _points(values: Sequence[float]) -> str:
    """Accuracy points with the interval, e.g. `12.3 ± 4.5`; one seed has no interval: `12.3`."""
    mean, half = interval([100 * value for value in values])
    return f"{mean:.1f} ± {half:.1f}" if len(values) > 1 else f"{mean:.1f}"


def _by_variant(results: list[LineageResult], family: str) -> dict[str, list[LineageResult]]:
    grouped: dict[str, list[LineageResult]] = {}
    for result in sorted(results, key=lambda r: r.seed):
        if result.family == family:
            grouped.setdefault(result.variant, []).append(result)
    return {name: grouped[name] for name in VARIANTS if name in grouped}


def _forgetting(result: LineageResult, fast: bool = False) -> float:
    return continual_metrics(result.fast_matrix if fast else result.matrix).forgetting


def _final_task(result: LineageResult, fast: bool = False) -> float:
    return continual_metrics(result.fast_matrix if fast else result.matrix).final_task


def _accuracy(result: LineageResult, fast: bool = False) -> float:
    return statistics.fmean((result.fast_matrix if fast else result.matrix)[-1])


def _row(
    name: str,
    runs: list[LineageResult],
    lora: dict[int, LineageResult],
    timed_on: str | None,
    fast: bool = False,
) -> str:
    """One table row: scores with intervals, forgetting against lora's, costs, general ability.

    The seconds per step are those of the runs on `timed_on` only (all runs where no record
    kept its host): a step in bfloat16 and one in float32 do not compare.
    """
    accuracy = _points([_accuracy(r, fast) for r in runs])
    if runs[0].variant == "multitask":  # one version: no forgetting to speak of
        forgetting = final = ratio = min_acc = fwt = "-"
    else:
        forgetting = _points([_forgetting(r, fast) for r in runs])
        final = _points([_final_task(r, fast) for r in runs])
        paired = [(r, lora[r.seed]) for r in runs if r.seed in lora]
        lora_mean = statistics.fmean(_forgetting(base) for _, base in paired) if paired else 0.0
        ratio = (
            f"{statistics.fmean(_forgetting(r, fast) for r, _ in paired) / lora_mean:.2f}"
            if lora_mean > 0
            else "-"
        )
        min_acc = _points([r.curves[-1][-1]["min_acc"] for r in runs]) if runs[0].curves else "-"
        transfers = [forward_transfer(r.matrix, r.base) for r in runs]
        fwt = _points([t for t in transfers if t is not None]) if not fast else "-"
    costs = [cost for r in runs for cost in r.costs]
    replayed = statistics.fmean(c["replayed_tokens"] for c in costs)
    trained = statistics.fmean(c["trained_tokens"] for c in costs)
    timed = [c for r in runs if timed_on in (None, _host(r)) for c in r.costs]
    step = f"{statistics.fmean(c['train_s_per_step'] for c in timed):.2f}" if timed else "-"
    return (
        f"| {name} | {len(runs)} | {accuracy} | {forgetting} | {ratio} | {final} | {fwt} | {min_acc} "
        f"| {replayed:,.0f} | {trained:,.0f} | {step} | {'-' if fast else _panel_change(runs)} |"
    )


def _panel_change(runs: list[LineageResult]) -> str:
    """Mean change of each health-panel suite, base to the last version, in points (perplexity: nats)."""
    if not runs[0].panel:
        return "-"
    last = f"v{len(runs[0].matrix)}"
    changes = []
    for suite in runs[0].panel["base"]:
        delta = statistics.fmean(r.panel[last][suite] - r.panel["base"][suite] for r in runs)
        changes.append(f"{delta:+.2f}" if suite == "perplexity" else f"{100 * delta:+.0f}")
    return " / ".join(changes)


_HEADER = (
    "| variant | seeds | ACC | forgetting | ÷ lora | final task | FWT | min-ACC | replayed tokens/job "
    "| trained tokens/job | s/step | panel change |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def family_tables(results: list[LineageResult], family: str, timed_on: str | None) -> str:
    """The comparison table and the ablation table of one family (s/step: `_row`)."""
    grouped = _by_variant(results, family)
    if not grouped:
        return ""
    lora = {r.seed: r for r in grouped.get("lora", [])}
    main = [_row(name, runs, lora, timed_on) for name, runs in grouped.items() if name not in ABLATIONS]
    ablations = []
    for name, runs in grouped.items():
        if name in ABLATIONS:
            ablations.append(_row(name, runs, lora, timed_on))
        if runs[0].fast_matrix:
            ablations.append(_row(f"{name} (fast adapter)", runs, lora, timed_on, fast=True))
    text = f"{_HEADER}\n" + "\n".join(main)
    if ablations:
        text += f"\n\nAblations:\n\n{_HEADER}\n" + "\n".join(ablations)
        if against := _against_full_method(grouped):
            text += f"\n\nEach ablation against its full method on the same seeds (points):\n\n{against}"
    if verdicts := _verdicts(grouped, lora):
        text += f"\n\nThe goal, method by method:\n\n{verdicts}"
    return text


def _against_full_method(grouped: dict[str, list[LineageResult]]) -> str:
    """What changing one mechanism does: an ablation's forgetting and final task minus its full
    method's, seed by seed (the same tasks in the same order)."""
    lines = []
    for name in ABLATIONS:
        method = VARIANTS[name].method
        full = {r.seed: r for r in grouped.get(method, [])}
        paired = [run for run in grouped.get(name, []) if run.seed in full]
        if not paired:
            continue
        seeds = len(paired)
        lines.append(
            f"- `{name}` against `{method}` ({seeds} seed{'s' * (seeds > 1)}): forgetting "
            f"{_signed(_paired(paired, full, _forgetting), seeds)}, final task "
            f"{_signed(_paired(paired, full, _final_task), seeds)}."
        )
    return "\n".join(lines)


def _verdicts(grouped: dict[str, list[LineageResult]], lora: dict[int, LineageResult]) -> str:
    """The goal, method by method, on the seeds it shares with `lora`: forgetting at most half of
    lora's, a mean final task at most 5 points below lora's, and forgetting clearly below the best
    replay baseline's (the paired interval of the difference below 0); no verdict on fewer than
    `VERDICT_SEEDS` seeds."""
    lines = []
    replays = {name: grouped[name] for name in REPLAY if name in grouped}
    best = min(replays, key=lambda n: statistics.fmean(map(_forgetting, replays[n])), default=None)
    for name in CONTINUAL:
        runs = [run for run in grouped.get(name, []) if run.seed in lora]
        if not runs:
            continue
        ratio = statistics.fmean(map(_forgetting, runs)) / max(
            statistics.fmean(_forgetting(lora[run.seed]) for run in runs), 1e-9
        )
        final = _paired(runs, lora, _final_task)
        line = (
            f"- `{name}` ({len(runs)} seed{'s' * (len(runs) > 1)}): forgetting {ratio:.2f} of lora's; "
            f"final task {_signed(final, len(runs))} points against lora's"
        )
        met = ratio <= 0.5 and final[0] >= -5
        if best is not None:
            against = _paired(runs, {r.seed: r for r in replays[best]}, _forgetting)
            line += (
                f"; forgetting {_signed(against, len(runs))} points against `{best}`"
                " (the replay with least forgetting)"
            )
            met = met and against[0] + against[1] < 0
        verdict = (
            f"goal {'met' if met else 'not met'}" if len(runs) >= VERDICT_SEEDS else "too few seeds to judge"
        )
        lines.append(f"{line}: {verdict}.")
    return "\n".join(lines)


def _paired(
    runs: list[LineageResult], reference: dict[int, LineageResult], metric: Callable[[LineageResult], float]
) -> tuple[float, float]:
    """Mean and 95% half-width of metric(run) - metric(reference run of the same seed), in points."""
    return interval([100 * (metric(r) - metric(reference[r.seed])) for r in runs if r.seed in reference])


def _signed(value: tuple[float, float], seeds: int) -> str:
    """A signed mean with its interval, e.g. `-3.2 ± 4.5`; one seed has no interval: `-3.2`."""
    return f"{value[0]:+.1f} ± {value[1]:.1f}" if seeds > 1 else f"{value[0]:+.1f}"


def stability_gap(runs: list[LineageResult]) -> list[float]:
    """Mean validation accuracy of earlier tasks at steps 0..DENSE_STEPS of a new job, relative to step 0,
    over every job after the first and every seed (points)."""
    curve = [0.0] * (DENSE_STEPS + 1)
    counts = [0] * (DENSE_STEPS + 1)
    for result in runs:
        for job in result.curves:
            start = statistics.fmean(job[0]["earlier"])
            for point in job:
                if point["step"] <= DENSE_STEPS:
                    curve[point["step"]] += 100 * (statistics.fmean(point["earlier"]) - start)
                    counts[point["step"]] += 1
    return [total / count if count else math.nan for total, count in zip(curve, counts, strict=True)]


def plot_stability_gap(results: list[LineageResult], family: str, path: Path) -> None:
    """Earlier tasks' accuracy over a new job's first steps, one line per variant: the methods and
    baselines in one panel, the ablations beside their full methods in another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = {name: runs for name, runs in _by_variant(results, family).items() if runs[0].curves}
    ablations = [name for name in grouped if name in ABLATIONS]
    full = {VARIANTS[name].method for name in ablations}
    panels = [("methods and baselines", [name for name in grouped if name not in ABLATIONS])]
    if ablations:
        beside = [name for name in grouped if name in full or name in ablations]
        panels.append(("ablations, beside their full methods", beside))
    # axes: (1, panels)
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), sharey=True, squeeze=False)
    colours = plt.get_cmap("tab20")
    for axis, (title, names) in zip(axes[0], panels, strict=True):
        for index, name in enumerate(names):
            curve = stability_gap(grouped[name])
            axis.plot(range(DENSE_STEPS + 1), curve, label=name, marker=".", color=colours(index % 20))
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set_xlabel("step of the new job")
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    axes[0][0].set_ylabel("earlier tasks' accuracy - at step 0 (points)")
    figure.suptitle(f"Stability gap, {family} family (validation probes)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


_NOT_KEPT = "not kept (made before records kept it)"


def _host(result: LineageResult) -> str:
    return f"{result.host['cpu']}, {result.host['precision']}" if result.host else _NOT_KEPT


def _timing_host(results: list[LineageResult]) -> str | None:
    """The host most records kept (the first by name of a tie): the one whose step times are shown."""
    counts = Counter(_host(result) for result in results if result.host)
    return max(sorted(counts), key=counts.__getitem__) if counts else None


def _hosts(results: list[LineageResult], timed_on: str | None) -> str:
    """Which CPUs and precisions the records trained on, and which one the s/step column reads."""
    counts = Counter(_host(result) for result in results)
    listed = "; ".join(f"{key}: {count}" for key, count in sorted(counts.items()))
    timing = (
        f" The s/step column reads only the records of {timed_on}, the host most of them trained on"
        " (step times compare only within one host; `-`: no record of the variant there)."
        if timed_on and len(counts) > 1
        else ""
    )
    return f"Records by host (CPU, the trainer's automatic precision): {listed}.{timing}"


def markdown(results: list[LineageResult], header: str, plots: dict[str, Path]) -> str:
    """The section: `header` (command, machine, protocol), then per family its tables and figure."""
    timed_on = _timing_host(results)
    parts = [header, _hosts(results, timed_on)]
    for family, title in (("test", "Test family (no default tuned on it)"), ("dev", "Dev family")):
        tables = family_tables(results, family, timed_on)
        if tables:
            parts.append(f"### {title}\n\n{tables}")
            if family in plots:
                parts.append(f"![stability gap, {family} family](images/{plots[family].name})")
    return "\n\n".join(parts)
