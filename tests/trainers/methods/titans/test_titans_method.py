"""The titans method at job boundaries: what a version keeps, what the next job and the loader read."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainers.methods.titans.config import TitansConfig
from trainers.methods.titans.method import TitansMethod
from trainers.servable import StatefulVersion, load_version

ROWS = [
    {"input_ids": [1, 40, 41, 42, 43, 44], "labels": [-100, -100, 41, 42, 43, 44], "length": 6},
    {"input_ids": [1, 50, 51, 52], "labels": [-100, 50, 51, 52], "length": 4},
]
IDS = torch.tensor([[1, *range(40, 60)]])


def _publish(tiny_base: Path, version_dir: Path, config: TitansConfig) -> torch.nn.Module:
    """A first job's version whose memory branches (and LoRA) moved away from their init."""
    torch.manual_seed(0)
    method = TitansMethod(config)
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent_dir=None)
    method.start_job("job-1", ROWS, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    method.export_adapter(model, version_dir / "adapter")
    (version_dir / "memory").mkdir(parents=True)
    method.save_memory(version_dir / "memory")
    manifest = {"method": "titans", "config": asdict(config)}
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    return model


@pytest.mark.parametrize("config", [TitansConfig(heads=2, head_dim=16), TitansConfig(base_lora=True, r=4)])
def test_the_next_job_and_the_loader_start_from_the_versions_memory(
    tiny_base: Path, tmp_path: Path, config: TitansConfig
) -> None:
    trained = _publish(tiny_base, tmp_path / "v1", config)
    with torch.no_grad():
        expected = trained(input_ids=IDS).logits

    method = TitansMethod(config)
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent_dir=tmp_path / "v1")
    method.start_job("job-2", ROWS[:1], seed=0)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS).logits, expected)
    replayed = sorted(row["input_ids"] for row in method.replay_rows(step=0, batch_size=4))
    assert replayed == sorted(row["input_ids"] for row in ROWS)  # the first job's rows, from the buffer
    assert all(p.requires_grad for name, p in model.named_parameters() if name.startswith("branches."))

    served = load_version(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1")
    assert isinstance(served, StatefulVersion) and not served.training
    with torch.no_grad():
        torch.testing.assert_close(served(input_ids=IDS).logits, expected)
    adapter_files = {path.name for path in (tmp_path / "v1" / "adapter").iterdir()}
    assert ("adapter_config.json" in adapter_files) == config.base_lora
