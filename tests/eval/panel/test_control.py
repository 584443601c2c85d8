"""A control update of the tiny model (a small `lora` job on ordinary prose) is `ok` on every panel suite.

The gate must tell learning from rot: an ordinary update is what every job does. The job runs in
the trainer process as a worker starts it, both models are scored by the evaluator's code, and
each suite is judged under the gate's default thresholds (docs/health.md).
"""

from pathlib import Path

from eval.panel import PANEL_SUITES
from eval.stats import Thresholds, compare
from service.schemas.lineages import DEFAULT_THRESHOLDS
from tests.trainers.conftest import run_trainer, write_jsonl, write_spec
from trainers.base_model.corpus import documents
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation
from trainers.contracts.lines import Panel
from trainers.evaluate import evaluate


def test_a_control_update_of_the_tiny_model_stays_ok(tiny_base: Path, tmp_path: Path) -> None:
    prose = write_jsonl(tmp_path / "prose.jsonl", [{"text": text} for text in documents(32, seed=7)])
    version = tmp_path / "v1"
    run = run_trainer(write_spec(version, tiny_base, prose, max_steps=8))
    assert run.returncode == 0, run.stderr[-3000:]

    models = [
        ModelEvaluation(0, None, {}, list(PANEL_SUITES)),
        ModelEvaluation(1, str(version), {}, list(PANEL_SUITES)),
    ]
    panels = [line for line in evaluate(EvaluatorSpec(str(tiny_base), models)) if isinstance(line, Panel)]
    scores = {(line.version, line.suite): line.scores for line in panels}

    for suite in PANEL_SUITES:
        rot, warn = DEFAULT_THRESHOLDS[suite]  # type: ignore[index]
        comparison = compare(scores[1, suite], scores[0, suite], Thresholds(rot=rot, warn=warn))
        assert comparison.verdict != "rot", (suite, comparison)
