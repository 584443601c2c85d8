"""Plain LoRA's hooks: a fresh adapter changes nothing until trained; a parent's is continued."""

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from trainers.methods.lora.config import LoraConfig
from trainers.methods.lora.method import LoraMethod

INPUT = torch.tensor([[1, 40, 41, 42, 43, 44]])  # (batch, seq)


def _base(tiny_base: Path):
    return AutoModelForCausalLM.from_pretrained(tiny_base).eval()


def test_fresh_adapter_trains_only_lora_weights_and_starts_as_identity(tiny_base: Path) -> None:
    expected = _base(tiny_base)(INPUT).logits
    model = LoraMethod(LoraConfig(r=4)).prepare_model(_base(tiny_base), parent_dir=None)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    # LoRA's B matrices start at zero: the untrained adapter leaves the base model's output.
    torch.testing.assert_close(model(INPUT).logits, expected)


def test_all_linear_is_saved_as_short_module_names(tiny_base: Path, tmp_path: Path) -> None:
    method = LoraMethod(LoraConfig(r=4))
    method.export_adapter(method.prepare_model(_base(tiny_base), None), tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"
    ]  # fmt: skip
    assert (config["r"], config["lora_alpha"]) == (4, 32.0)


def test_parent_adapter_is_loaded_trainable_with_its_weights(tiny_base: Path, tmp_path: Path) -> None:
    method = LoraMethod(LoraConfig(r=4))
    parent = method.prepare_model(_base(tiny_base), None)
    with torch.no_grad():
        for name, p in parent.named_parameters():
            if "lora_B" in name:
                p.normal_()
    method.export_adapter(parent, tmp_path / "v1" / "adapter")

    child = method.prepare_model(_base(tiny_base), parent_dir=tmp_path / "v1")
    torch.testing.assert_close(child(INPUT).logits, parent(INPUT).logits)
    assert any(p.requires_grad for name, p in child.named_parameters() if "lora_B" in name)
