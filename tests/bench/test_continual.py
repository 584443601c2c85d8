"""The continual-learning harness: lineages run in parallel, resume from `matrices.json`, and report.

Training is replaced by a fake lineage here (each test names what it stands for); the real
lineages are what `python -m bench.continual` runs.
"""

import json
import threading
import time
from pathlib import Path

import pytest

from bench import continual_stream
from bench.continual import report
from bench.continual_stream import MethodResult, run_benchmark
from eval.metrics import continual_metrics


class FakeLineages:
    """Stands in for `_run_lineage`: a matrix whose cells encode (method, seed); counts concurrency."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.ran: list[tuple[str, int]] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, method: str, seed: int, tasks: list, files: list, *args: object) -> list:
        assert all(path.exists() for pair in files for path in pair)  # written before any lineage
        with self.lock:
            self.ran.append((method, seed))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        score = 0.1 * seed + (0.5 if method == "trc" else 0.0)
        return [[score if j <= i else None for j in range(len(tasks))] for i in range(len(tasks))]


@pytest.fixture
def lineages(monkeypatch: pytest.MonkeyPatch) -> FakeLineages:
    fake = FakeLineages(seconds=0.2)
    monkeypatch.setattr(continual_stream, "_run_lineage", fake)
    monkeypatch.setattr(continual_stream.AutoTokenizer, "from_pretrained", lambda path: None)
    return fake


def test_parallel_lineages_land_in_seed_order(lineages: FakeLineages, tmp_path: Path) -> None:
    results = run_benchmark(["lora", "trc"], 3, tmp_path / "base", tmp_path, parallel=2, log=lambda _: None)

    assert lineages.most_at_once == 2
    assert sorted(lineages.ran) == [(m, s) for m in ("lora", "trc") for s in range(3)]
    for method, offset in (("lora", 0.0), ("trc", 0.5)):
        firsts = [matrix[0][0] for matrix in results[method].matrices]
        assert firsts == pytest.approx([offset, offset + 0.1, offset + 0.2])
    saved = json.loads((tmp_path / "matrices.json").read_text())
    assert {method: len(matrices) for method, matrices in saved.items()} == {"lora": 3, "trc": 3}


def test_a_rerun_keeps_finished_lineages_and_other_methods(lineages: FakeLineages, tmp_path: Path) -> None:
    run_benchmark(["lora"], 2, tmp_path / "base", tmp_path, log=lambda _: None)
    lineages.ran.clear()

    results = run_benchmark(["lora", "trc"], 3, tmp_path / "base", tmp_path, parallel=2, log=lambda _: None)

    assert sorted(lineages.ran) == [("lora", 2), ("trc", 0), ("trc", 1), ("trc", 2)]
    assert len(results["lora"].matrices) == 3
    saved = json.loads((tmp_path / "matrices.json").read_text())
    assert {method: len(matrices) for method, matrices in saved.items()} == {"lora": 3, "trc": 3}


def test_a_gap_in_seeds_is_not_saved_as_if_contiguous(tmp_path: Path) -> None:
    matrix = [[1.0]]
    continual_stream._write_matrices({("trc", 0): matrix, ("trc", 2): matrix}, tmp_path / "matrices.json")

    assert json.loads((tmp_path / "matrices.json").read_text()) == {"trc": [matrix]}


def _result(forgetting: float, final: float) -> MethodResult:
    matrices = [
        [[1.0, None, None, None], [1.0, 1.0, None, None], [1.0, 1.0, 1.0, None], [1 - f, 1 - f, 1 - f, final]]
        for f in (forgetting - 0.01, forgetting + 0.01)
    ]
    return MethodResult(matrices, [continual_metrics(m) for m in matrices])


def test_the_report_states_trc_against_its_targets(tmp_path: Path) -> None:
    results = {"lora": _result(0.8, 0.2), "trc": _result(0.3, 0.3)}
    cost = {"lora": 50.0, "ilora": 60.0, "trc": 90.0}

    markdown = report(results, cost, 2, 100, tmp_path / "plot.png", "python -m bench.continual --seeds 2")

    assert markdown.startswith("## Continual learning: `trc` and its ablations against the PEFT methods\n")
    assert "`python -m bench.continual --seeds 2`" in markdown
    assert "30.0 / 80.0 =\n**0.38** (target at most 0.5)" in markdown
    assert "`trc` 30.0 against\n`lora` 20.0, +10.0 points" in markdown
    assert "**1.80** × `lora`, target at most 2" in markdown


def test_a_report_without_trc_states_no_trc_targets(tmp_path: Path) -> None:
    results = {"lora": _result(0.8, 0.2), "replay": _result(0.5, 0.2)}
    cost = {"lora": 50.0, "ilora": 60.0, "trc": 90.0}

    markdown = report(results, cost, 2, 100, tmp_path / "plot.png", "python -m bench.continual")

    assert "target at most 0.5" not in markdown
    assert markdown.startswith("## Continual learning: forgetting over a stream of tasks\n")
