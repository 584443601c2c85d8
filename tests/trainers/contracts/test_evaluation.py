"""The evaluator's spec: what the worker writes is what the evaluator reads."""

from pathlib import Path

from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation, ServingTarget


def test_a_written_spec_reads_back_equal(tmp_path: Path) -> None:
    spec = EvaluatorSpec(
        "/models/base",
        [
            ModelEvaluation(2, "/store/v2", {"ftjob-a": "/store/v1/probes.json"}, ["perplexity"], "bot@2"),
            ModelEvaluation(0, None, {"ftjob-a": "/store/v1/probes.json"}),
        ],
        ServingTarget("http://127.0.0.1:8000/v1", "key"),
    )
    assert EvaluatorSpec.load(spec.write(tmp_path / "spec.json")) == spec


def test_the_evaluation_of_a_version_is_found_by_its_number() -> None:
    base, version = ModelEvaluation(0, None, {}), ModelEvaluation(3, "/v3", {})
    spec = EvaluatorSpec("/models/base", [version, base])
    assert spec.evaluation(0) is base and spec.evaluation(3) is version and spec.evaluation(1) is None
