"""PEFT LoRA adapters made on the fly for serving tests: random `lora_B` so each changes the output."""

from pathlib import Path


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """Write a rank-8 adapter on the attention and MLP projections of `base`, different per seed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"])
    model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(out)
    return out
