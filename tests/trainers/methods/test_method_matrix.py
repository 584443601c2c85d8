"""Every registered method through the same life: train, continue from a parent, resume, export.

Run as trainer processes, as jobs run. A new method gets its row here by being registered.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tests.trainers.conftest import run_trainer, write_spec
from trainers.contracts.methods import Method, available_methods, version_loader
from trainers.servable import load_version

pytestmark = pytest.mark.slow

STEPS = 12
EVERY = 6
IDS = torch.tensor([[1, 40, 41, 42, 43]])  # (batch, seq)


def _train(output_dir: Path, tiny_base: Path, data: Path, method: str, parent: Path | None = None) -> dict:
    spec = write_spec(
        output_dir,
        tiny_base,
        data,
        parent_dir=parent,
        max_steps=STEPS,
        checkpoint_every=EVERY,
        method=Method.resolve(method, {"r": 4}),
    )
    run = run_trainer(spec)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.lines[-1]["type"] == "completed"
    return run.lines[-1]


def _version_weights(version: Path) -> dict[str, torch.Tensor]:
    """Every tensor a version keeps in `adapter/` and `memory/`, by file and name."""
    files = sorted((version / "adapter").rglob("*.safetensors")) + sorted(
        (version / "memory").rglob("*.safetensors")
    )
    return {
        f"{path.relative_to(version)}:{name}": tensor
        for path in files
        for name, tensor in load_file(path).items()
    }


@pytest.mark.parametrize("method", available_methods())
def test_method_trains_continues_resumes_and_exports(
    method: str, tmp_path: Path, tiny_base: Path, facts_file: Path, second_facts_file: Path
) -> None:
    v1 = tmp_path / "v1"
    _train(v1, tiny_base, facts_file, method)
    v2 = tmp_path / "v2"
    uninterrupted = _train(v2, tiny_base, second_facts_file, method, parent=v1)

    # Resume: the same job (same folder name, same job id) finding v2's mid-job checkpoint, as a
    # job re-claimed after its worker died would.
    resumed_dir = tmp_path / "resumed" / "v2"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(
        v2 / "checkpoints" / f"step-{EVERY:06d}", resumed_dir / "checkpoints" / f"step-{EVERY:06d}"
    )
    resumed = _train(resumed_dir, tiny_base, second_facts_file, method, parent=v1)
    assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-4)
    assert resumed["trained_tokens"] == uninterrupted["trained_tokens"]
    expected_weights, resumed_weights = _version_weights(v2), _version_weights(resumed_dir)
    assert expected_weights and resumed_weights.keys() == expected_weights.keys()
    for name, weights in expected_weights.items():
        torch.testing.assert_close(resumed_weights[name], weights)

    # Export: a version's adapter/, when it holds one (always for a method without a loader of its
    # own), is a plain PEFT adapter that changes the base model's output, and so does the version
    # as `trainers.servable` loads it.
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    expected = base(IDS).logits
    for version in (v1, v2):
        assert json.loads((version / "manifest.json").read_text())["method"] == method
        # What serving and evaluation load: the method's own loader, or the PEFT adapter.
        served = load_version(AutoModelForCausalLM.from_pretrained(tiny_base), version)
        assert not served.training
        assert not torch.allclose(served(input_ids=IDS).logits, expected, atol=1e-4)
        if version_loader(method) is not None and not (version / "adapter" / "adapter_config.json").exists():
            continue
        config = json.loads((version / "adapter" / "adapter_config.json").read_text())
        assert (config["peft_type"], config["r"]) == ("LORA", 4)
        adapted = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_base), version / "adapter"
        ).eval()
        assert not torch.allclose(adapted(IDS).logits, expected, atol=1e-4)
