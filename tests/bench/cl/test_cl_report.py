"""The benchmark's tables and verdicts, from hand-made lineage results."""

from pathlib import Path

import pytest
from matplotlib.image import imread

from bench.cl.__main__ import _coverage
from bench.cl.protocol import LineageResult
from bench.cl.report import interval, markdown, plot_stability_gap, stability_gap


def _lineage(variant: str, seed: int, drop: float, final: float = 0.9) -> LineageResult:
    """Three tasks each learned to 0.9 (the last to `final`), earlier ones losing `drop` per later job."""
    matrix = [
        [0.9, 0.0, 0.0],
        [0.9 - drop, 0.9, 0.0],
        [0.9 - 2 * drop, 0.9 - drop, final],
    ]
    curve = [
        {"step": step, "earlier": [0.9 - drop * step / 3], "current": 0.5, "min_acc": 0.5}
        for step in range(4)
    ]
    cost = {"steps": 40, "trained_tokens": 9000, "replayed_tokens": 0, "train_s_per_step": 1.5, "eval_s": 3.0}
    return LineageResult(
        "test",
        variant,
        seed,
        ["a", "b", "c"],
        [0.0, 0.0, 0.0],
        matrix,
        curves=[curve, curve],
        costs=[cost] * 3,
    )


def test_interval_is_a_t_interval_over_seeds() -> None:
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.30 * 1.0 / 3**0.5, rel=1e-3)
    assert interval([5.0]) == (5.0, 0.0)


def test_the_verdict_compares_with_lora_and_the_best_replay(tmp_path: Path) -> None:
    results = [
        *(_lineage("lora", seed, drop=0.4 + 0.01 * seed) for seed in range(3)),
        *(_lineage("replay", seed, drop=0.2 + 0.01 * seed) for seed in range(3)),
        *(_lineage("trc", seed, drop=0.1 + 0.01 * seed) for seed in range(3)),  # a quarter of lora's
        *(_lineage("ilora", seed, drop=0.3, final=0.5) for seed in range(3)),  # forgets less, learns less
        # forgets least, but its last task is 20 points worse on average: a wide interval does not hide it
        *(_lineage("titans", seed, drop=0.1 + 0.01 * seed, final=(0.3, 0.9, 0.9)[seed]) for seed in range(3)),
    ]
    text = markdown(results, "## header", {"test": tmp_path / "gap.png"})
    assert "| trc | 3 |" in text and "| replay | 3 |" in text
    assert (
        "- `trc` (3 seeds): forgetting 0.27 of lora's; final task +0.0 ± 0.0 points against lora's; "
        "forgetting -15.0 ± 0.0 points against `replay` (the replay with least forgetting): goal met." in text
    )
    assert "- `ilora` (3 seeds): forgetting 0.73 of lora's; final task -40.0 ± 0.0 points" in text
    assert "- `titans` (3 seeds): forgetting 0.27 of lora's; final task -20.0 ± 86.0 points" in text
    assert text.count("goal not met") == 2
    one_seed = markdown([r for r in results if r.seed == 0], "## header", {})
    assert "- `trc` (1 seed)" in one_seed and "too few seeds to judge" in one_seed
    assert "goal met" not in one_seed and "goal not met" not in one_seed
    assert "| trc | 1 | 80.0 | 15.0 | 0.25 | 90.0 | 0.0 | 50.0 |" in one_seed  # one seed: no interval to give
    assert "Dev family" not in text  # no dev lineages ran


def test_the_stability_gap_curve_is_relative_to_the_new_jobs_start(tmp_path: Path) -> None:
    runs = [_lineage("lora", seed, drop=0.3) for seed in range(2)]
    curve = stability_gap(runs)
    assert curve[:4] == pytest.approx([0.0, -10.0, -20.0, -30.0])
    plot_stability_gap(runs, "test", tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size > 1000
    ablated = [*runs, _lineage("trc", 0, drop=0.1), _lineage("trc-no-router", 0, drop=0.2)]
    plot_stability_gap(ablated, "test", tmp_path / "two-panels.png")  # the ablations get a panel
    width = {name: imread(tmp_path / name).shape[1] for name in ("gap.png", "two-panels.png")}  # (h, w, rgba)
    assert width["two-panels.png"] > 1.5 * width["gap.png"]


def test_the_section_says_which_host_each_record_trained_on(tmp_path: Path) -> None:
    old = _lineage("lora", 0, drop=0.4)  # a record from before hosts were kept
    here = [_lineage(variant, 1, drop=0.3) for variant in ("lora", "trc")]
    for result in here:
        result.host = {"cpu": "AMD EPYC, no bfloat16 instructions", "precision": "float32"}
    text = markdown([old, *here], "## header", {})
    assert (
        "AMD EPYC, no bfloat16 instructions, float32: 2; not kept (made before records kept it): 1." in text
    )


def test_step_times_are_read_on_one_host_only() -> None:
    def on(host: str, result: LineageResult, seconds: float) -> LineageResult:
        result.host = {"cpu": "AMD EPYC", "precision": host}
        result.costs = [{**cost, "train_s_per_step": seconds} for cost in result.costs]
        return result

    results = [
        on("bfloat16", _lineage("lora", 0, drop=0.4), 2.0),
        on("bfloat16", _lineage("lora", 1, drop=0.4), 3.0),
        on("float32", _lineage("lora", 2, drop=0.4), 9.0),  # slower precision: left out of the mean
        on("float32", _lineage("trc", 0, drop=0.1), 9.0),  # no record on the timing host
    ]
    text = markdown(results, "## header", {})
    assert "reads only the records of AMD EPYC, bfloat16" in text
    lora, trc = (line for line in text.splitlines() if line.startswith(("| lora |", "| trc |")))
    assert lora.split(" | ")[-2] == "2.50" and trc.split(" | ")[-2] == "-"
    unkept = markdown([_lineage("lora", 0, drop=0.4)], "## header", {})  # no host kept: every record
    assert "reads only" not in unkept and "| 1.50 |" in unkept


def test_the_section_says_which_lineages_asked_have_not_run() -> None:
    asked = [("test", variant, seed) for seed in range(3) for variant in ("lora", "trc")]
    ran = [_lineage("lora", seed, drop=0.4) for seed in range(3)] + [_lineage("trc", 0, drop=0.1)]
    assert _coverage(asked, ran) == "4 of the 6 lineages asked have run; not yet: test `trc` seeds 1, 2."
    assert _coverage(asked[:2], ran) == "2 of the 2 lineages asked have run."


def test_each_ablation_is_set_against_its_full_method_on_the_same_seeds() -> None:
    results = [
        *(_lineage("lora", seed, drop=0.4) for seed in range(2)),
        *(_lineage("trc", seed, drop=0.1) for seed in range(2)),
        *(_lineage("trc-no-router", seed, drop=0.2 + 0.1 * seed, final=0.8) for seed in range(2)),
        _lineage("ilora-no-consistency", 0, drop=0.3),  # its full method has not run: nothing to set against
    ]
    text = markdown(results, "## header", {})
    assert (
        "- `trc-no-router` against `trc` (2 seeds): forgetting +22.5 ± 95.3, final task -10.0 ± 0.0." in text
    )
    assert "`ilora-no-consistency` against" not in text and "| ilora-no-consistency | 1 |" in text
    one_seed = markdown([r for r in results if r.seed == 0], "## header", {})
    assert "- `trc-no-router` against `trc` (1 seed): forgetting +15.0, final task -10.0." in one_seed
