"""`python -m trainers.run`: failures exit non-zero and say why in the last stderr line."""

import json
from pathlib import Path

import pytest

from tests.trainers.conftest import run_trainer, write_spec

pytestmark = pytest.mark.slow  # every test here starts a trainer process


def test_a_spec_with_a_missing_field_is_refused(tmp_path: Path, tiny_base: Path, facts_file: Path) -> None:
    spec = json.loads(write_spec(tmp_path / "v1.partial", tiny_base, facts_file).read_text())
    del spec["seed"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = run_trainer(tmp_path / "spec.json")
    assert run.returncode == 2
    assert run.lines == []
    assert run.stderr.strip().splitlines()[-1] == "invalid spec: spec is missing fields: seed"


@pytest.mark.parametrize(
    ("method", "param"),
    [({"type": "lorax"}, "method.type"), ({"type": "lora", "lora": {"r": -1}}, "method.lora.r")],
)
def test_a_bad_method_is_refused_with_its_param(
    tmp_path: Path, tiny_base: Path, facts_file: Path, method: dict, param: str
) -> None:
    spec = write_spec(tmp_path / "v1.partial", tiny_base, facts_file)
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "method": method}))  # as a buggy writer might
    run = run_trainer(spec)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith(f"invalid spec: {param}: ")


def test_a_failure_while_training_exits_1_with_the_reason(tmp_path: Path, tiny_base: Path) -> None:
    spec = write_spec(tmp_path / "v1.partial", tiny_base, tmp_path / "missing.jsonl")
    run = run_trainer(spec)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("training failed: FileNotFoundError: ")
    assert not (tmp_path / "v1.partial" / "manifest.json").exists()
    assert [line["type"] for line in run.lines] == []  # it never started
