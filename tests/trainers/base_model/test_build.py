"""Built base models load with the standard Auto classes and carry a usable tokenizer."""

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from trainers.base_model.build import PRESETS, _llama_config
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
    class Vocabulary:  # what _llama_config reads from a tokenizer
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __len__(self) -> int:
            return PRESETS["small"].vocab_size

    with torch.device("meta"):
        model = LlamaForCausalLM(_llama_config(PRESETS["small"], Vocabulary()))
    assert 3.2e6 < sum(p.numel() for p in model.parameters()) < 3.4e6
