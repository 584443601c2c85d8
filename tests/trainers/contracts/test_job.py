"""spec.json parsing: a worker's mistakes are refused before any model is loaded."""

from pathlib import Path

import pytest

from trainers.contracts.integrations import Integration
from trainers.contracts.job import Hyperparameters, JobSpec, SpecError
from trainers.contracts.methods import Method, MethodConfigError

SPEC = {
    "job_id": "ftjob-1",
    "tenant": "acme",
    "lineage": "bot",
    "version": 2,
    "parent_version": 1,
    "base_model": "/models/base",
    "method": {"type": "lora", "lora": {"r": 8}},
    "training_file": "/files/file-1.jsonl",
    "training_file_sha256": "abc",
    "parent_dir": "/store/acme/bot/v1",
    "output_dir": "/store/acme/bot/v2.partial",
    "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0, "max_steps": None},
    "seed": 0,
    "checkpoint_every": 50,
    "cache_dir": "/cache",
}


def test_a_protocol_spec_parses_with_paths() -> None:
    spec = JobSpec.from_dict(SPEC)
    assert spec.parent_dir == Path("/store/acme/bot/v1")
    assert spec.hyperparameters.batch_size == 8
    assert (spec.method.type, spec.method.config.r) == ("lora", 8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surprise": 1}, "spec has unknown fields: surprise"),
        ({"hyperparameters": {"n_epochs": 3, "batch_size": 8}}, "missing fields: learning_rate_multiplier"),
        (
            {"hyperparameters": {"n_epochs": 3, "batch_size": 0, "learning_rate_multiplier": 1.0}},
            "hyperparameters.batch_size must be an integer from 1 to 512",
        ),
        ({"checkpoint_every": 0}, "checkpoint_every must be a positive integer"),
        ({"parent_dir": None}, "parent_dir and parent_version must be both set or both null"),
        ({"validation_file": "/d/v.jsonl"}, "validation_file and validation_file_sha256 must be both set"),
        ({"method": {"type": "lora", "lora": {"alpha": "big"}}}, "method.lora.alpha: must be a number"),
    ],
)
def test_mistakes_are_refused_with_a_reason(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        JobSpec.from_dict({**SPEC, **change})


def test_a_written_spec_reads_back_equal(tmp_path: Path) -> None:
    spec = JobSpec.from_dict(SPEC)
    assert JobSpec.load(spec.write(tmp_path / "spec.json")) == spec
    resolved = Method.resolve("lora", {"r": 8}).to_json()  # every default written out
    assert spec.to_json() == {
        **SPEC,
        "method": resolved,
        "held_out_rows": [],
        "continual_eval": None,
        "precision": "auto",
        "objective": {"type": "supervised", "beta": None},
        "validation_file": None,
        "validation_file_sha256": None,
        "integrations": [],
    }
    tracked = JobSpec.from_dict(
        {**SPEC, "integrations": [{"type": "wandb", "project": "facts", "tags": ["a"]}]}
    )
    assert tracked.integrations == [Integration("wandb", "facts", tags=["a"])]
    assert JobSpec.load(tracked.write(tmp_path / "tracked.json")) == tracked
    with pytest.raises(SpecError, match="integration type must be one of"):
        JobSpec.from_dict({**SPEC, "integrations": [{"type": "comet", "project": "facts"}]})
    validated = JobSpec.from_dict({**SPEC, "validation_file": "/d/v.jsonl", "validation_file_sha256": "ab"})
    assert validated.validation_file == Path("/d/v.jsonl")
    assert JobSpec.load(validated.write(tmp_path / "validated.json")) == validated


def test_a_spec_built_in_code_carries_a_resolved_method() -> None:
    """Writers build JobSpec objects from a `Method`, so a bad config fails where it is resolved."""
    built = JobSpec.from_dict(SPEC)
    with pytest.raises(SpecError, match="must be a Method, got dict"):
        JobSpec(**{**built.__dict__, "method": {"type": "lora", "lora": {"r": 8}}})
    with pytest.raises(MethodConfigError, match=r"method\.lora\.alpha: must be a number"):
        Method.resolve("lora", {"alpha": "big"})


def test_max_steps_overrides_epochs() -> None:
    """The API's step limit and the trainer count steps with the same rule."""
    epochs = Hyperparameters(n_epochs=3, batch_size=4, learning_rate_multiplier=1.0)
    assert epochs.total_steps(rows=10) == 9  # 3 passes of ceil(10 / 4) steps
    assert Hyperparameters(3, 4, 1.0, max_steps=5).total_steps(rows=10) == 5
