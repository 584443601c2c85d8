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


def peft_greedy(base: Path, adapter: Path, prompt: str, max_tokens: int) -> str:
    """Greedy continuation of `prompt` by base + adapter in transformers/peft (the reference)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, min_new_tokens=max_tokens)
    return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
