"""Built base models load with the standard Auto classes and carry a usable tokenizer."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from trainers.base_model.architectures import ARCHITECTURES, MISTRAL_SLIDING_WINDOW, model_config
from trainers.base_model.build import PRESETS, build_base
from trainers.base_model.corpus import fact_set


class TestTinyBase:
    def test_loads_with_auto_classes_and_generates(self, tiny_base: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(tiny_base)
        tokenizer = AutoTokenizer.from_pretrained(tiny_base)
        assert model.config.model_type == "llama"
        assert model.config.num_hidden_layers == 2
        assert model.config.hidden_size == 64
        ids = tokenizer("Q: Where does Velomar live?\nA:", return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        assert out.shape == (1, ids.shape[1] + 4)

    def test_records_how_it_was_built(self, tiny_base: Path) -> None:
        record = json.loads((tiny_base / "base_model.json").read_text())
        assert record["preset"] == "tiny"
        assert record["seed"] == 0
        assert record["pretrain_loss"] is None  # tiny stays at random init
        assert record["seconds"] < 30


class TestTokenizer:
    def test_special_tokens_and_bos_in_front(self, tiny_base: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_base)
        assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
        ids = tokenizer("The old man walked to the market.").input_ids
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == "The old man walked to the market."

    def test_corpus_words_take_few_tokens(self, tiny_base: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_base)
        text = " ".join(row["prompt"] + row["completion"] for row in fact_set("t"))
        assert len(tokenizer(text).input_ids) < len(text.encode()) / 2  # bytes alone: 1 each

    def test_chat_template_renders_prefixes_of_the_whole(self, tiny_base: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_base)
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Where does Velomar live?"},
            {"role": "assistant", "content": "Velomar lives in Trasku."},
        ]
        whole = tokenizer.apply_chat_template(messages, tokenize=False)
        assert whole == (
            "<s><|system|>\nBe brief.</s>\n<|user|>\nWhere does Velomar live?</s>\n"
            "<|assistant|>\nVelomar lives in Trasku.</s>\n"
        )
        prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
        assert whole.startswith(prompt)
        assert prompt.endswith("<|assistant|>\n")


def test_small_preset_has_about_3_3m_parameters() -> None:
    class Vocabulary:  # what model_config reads from a tokenizer
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __len__(self) -> int:
            return PRESETS["small"].vocab_size

    with torch.device("meta"):
        model = LlamaForCausalLM(model_config("llama", PRESETS["small"], Vocabulary()))
    assert 3.2e6 < sum(p.numel() for p in model.parameters()) < 3.4e6


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_keeps_its_own_traits(architecture: str, tmp_path: Path) -> None:
    """Grouped-query heads wider than hidden / heads, and what sets the family apart."""
    shape = dataclasses.replace(PRESETS["tiny"], num_kv_heads=2, head_dim=32)
    out = build_base(tmp_path, preset=shape, architecture=architecture, log=lambda line: None)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.config.model_type == architecture
    assert json.loads((out / "base_model.json").read_text())["architecture"] == architecture
    attention = model.get_decoder().layers[0].self_attn
    assert (attention.q_proj.out_features, attention.k_proj.out_features) == (4 * 32, 2 * 32)
    assert (attention.q_proj.bias is not None) == (architecture == "qwen2")
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == (architecture == "gemma")

    # Under a sliding window the last position no longer sees the first token: each of the 2
    # layers reaches `window - 1` positions further back.
    length = 2 * MISTRAL_SLIDING_WINDOW + 4
    ids = torch.randint(3, 512, (1, length), generator=torch.Generator().manual_seed(0))  # (1, seq)
    changed = ids.clone()
    changed[0, 1] = (ids[0, 1] + 1) % 512
    with torch.no_grad():
        moved = (model(ids).logits[0, -1] - model(changed).logits[0, -1]).abs().max()
    assert (moved < 1e-5) == (architecture == "mistral")
