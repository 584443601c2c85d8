"""One lineage of the continual-learning benchmark, trained for real on the tiny base (a few steps)."""

import argparse
import shutil
from pathlib import Path

import pytest

from bench.cl.__main__ import _run
from bench.cl.protocol import DENSE_STEPS, LineageResult, run_lineage
from bench.report import cpu
from trainers.precision import compute_dtype


def test_a_lineage_is_scored_after_every_task_and_its_tracker_spans_the_jobs(
    tiny_base: Path, tmp_path: Path
) -> None:
    result = run_lineage(
        "test", "ilora", seed=1, base_model=tiny_base, workdir=tmp_path, steps=3, panel=("perplexity",)
    )
    assert result.tasks == ["test-clock", "test-planets", "test-products"]  # seed 1's rotation
    assert len(result.matrix) == len(result.fast_matrix) == 3 and all(len(row) == 3 for row in result.matrix)
    assert all(0.0 <= score <= 1.0 for row in result.matrix for score in row)
    # Jobs 2 and 3 evaluated the earlier tasks' validation probes at steps 0..3 (all dense here).
    assert [[point["step"] for point in job] for job in result.curves] == [[0, 1, 2, 3]] * 2
    assert [len(job[0]["earlier"]) for job in result.curves] == [1, 2]
    # Job 3's min-ACC goes on from job 2's: task 1's minimum includes its dips during job 2.
    task_1_in_job_2 = min(point["earlier"][0] for point in result.curves[0])
    start = result.curves[1][0]["earlier"]
    assert result.curves[1][0]["min_acc"] == pytest.approx((min(task_1_in_job_2, start[0]) + start[1]) / 2)
    # I-LoRA replays from the second job on; every job trains 3 steps of 8 new rows.
    assert [cost["replayed_tokens"] > 0 for cost in result.costs] == [False, True, True]
    assert all(cost["steps"] == 3 and cost["train_s_per_step"] > 0 for cost in result.costs)
    assert set(result.panel) == {"base", "v3"} and set(result.panel["v3"]) == {"perplexity"}
    assert DENSE_STEPS >= 3
    # Where it trained, so that its step costs are compared only with the same host's.
    assert result.host == {"cpu": cpu(), "precision": str(compute_dtype("auto")).removeprefix("torch.")}


def test_a_finished_lineage_is_read_back_not_trained_again(tiny_base: Path, tmp_path: Path) -> None:
    records = tmp_path / "records"
    first = run_lineage("dev", "multitask", 0, tiny_base, tmp_path / "work", steps=1, records=records)
    assert len(first.matrix) == 1 and first.costs[0]["steps"] == 3  # one job, as long as the stream
    record = records / "dev" / "multitask-seed0.json"
    assert [path.name for path in record.parent.iterdir()] == [record.name]  # no half-written leftovers
    stamp = record.stat().st_mtime_ns
    # The record alone is enough: a fresh checkout (no work folder) reads it back.
    shutil.rmtree(tmp_path / "work")
    again = run_lineage("dev", "multitask", 0, tiny_base, tmp_path / "work", steps=1, records=records)
    assert again == first and record.stat().st_mtime_ns == stamp
    assert LineageResult.load(record) == first


def test_lineages_trained_two_at_once_land_in_the_order_asked(
    tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = [("dev", "multitask", 0), ("dev", "no-such-variant", 0), ("test", "multitask", 0)]
    args = argparse.Namespace(
        base=tiny_base, workdir=tmp_path, steps=1, panel="", parallel=2, results=tmp_path
    )
    results = _run(work, args)  # two at once: models load concurrently, which threads could not do
    # The lineage that fails is reported; the others are trained all the same.
    assert [(r.family, r.variant, r.seed) for r in results] == [work[0], work[2]]
    assert all((tmp_path / f / "multitask-seed0.json").exists() for f in ("dev", "test"))
    assert "dev no-such-variant seed 0: failed: KeyError('no-such-variant')" in capsys.readouterr().out
