"""The memory attachment: zero gate = base model exactly, decoding with a cache = reading the whole
sequence, session state, padding."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainers.methods.titans.config import TitansConfig
from trainers.methods.titans.layer import TitansForCausalLM, memory_layers
from trainers.methods.titans.method import TitansMethod

IDS = torch.tensor([[1, *range(40, 70)]])  # (batch, seq): 31 tokens, chunks of 4 and a tail


def _titans(tiny_base: Path, **fields) -> TitansForCausalLM:
    torch.manual_seed(0)
    config = TitansConfig(heads=2, head_dim=16, chunk_size=4, **fields)
    return TitansMethod(config).prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), None).eval()


@torch.no_grad()
def _open_gates(model: TitansForCausalLM) -> None:
    for branch in model.branches.values():
        branch.gate.fill_(0.5)


@pytest.mark.parametrize("fields", [{"variant": "gate"}, {"variant": "layer"}, {"base_lora": True, "r": 4}])
def test_a_zero_gate_reproduces_the_base_logits_exactly(tiny_base: Path, fields: dict) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    model = _titans(tiny_base, **fields)
    with torch.no_grad():
        assert torch.equal(model(input_ids=IDS).logits, base(input_ids=IDS).logits)
        _open_gates(model)
        assert not torch.allclose(model(input_ids=IDS).logits, base(input_ids=IDS).logits, atol=1e-3)


def test_only_the_memory_trains_and_the_hidden_states_include_it(tiny_base: Path) -> None:
    model = _titans(tiny_base)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("branches.") for name in trainable)
    _open_gates(model)
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    with torch.no_grad():
        hidden = model(input_ids=IDS, output_hidden_states=True).hidden_states
        expected = base(input_ids=IDS, output_hidden_states=True).hidden_states
    assert torch.equal(hidden[0], expected[0])  # the embeddings; the memory joins at layer 0
    assert not torch.allclose(hidden[1], expected[1], atol=1e-4)


@pytest.mark.parametrize("variant", ["gate", "layer"])
def test_decoding_with_a_cache_equals_reading_the_whole_sequence(tiny_base: Path, variant: str) -> None:
    model = _titans(tiny_base, variant=variant)
    _open_gates(model)
    prompt = IDS[:, :9]
    options = {"max_new_tokens": 14, "do_sample": False, "pad_token_id": 0}
    cached = model.generate(prompt, **options, output_logits=True, return_dict_in_generate=True)
    uncached = model.generate(prompt, **options, use_cache=False)
    assert torch.equal(cached.sequences, uncached)
    with torch.no_grad():
        full = model(input_ids=cached.sequences).logits[:, 8:-1]  # (1, 14, vocab)
    torch.testing.assert_close(torch.stack(cached.logits, dim=1), full, rtol=1e-4, atol=1e-4)
    assert model.memory_state()["0"].position == cached.sequences.shape[1]


def test_a_session_state_carries_the_memory_into_the_next_sequence(tiny_base: Path) -> None:
    model = _titans(tiny_base)
    _open_gates(model)
    with torch.no_grad():
        fresh = model(input_ids=IDS[:, 16:]).logits
        model(input_ids=IDS[:, :16])
        session = model.memory_state()
        model.start_memory(session)
        continued = model(input_ids=IDS[:, 16:]).logits
        model.start_memory(None)
        again = model(input_ids=IDS[:, 16:]).logits
    assert session["0"].position == 16
    assert not torch.allclose(continued, fresh, atol=1e-4)
    assert torch.equal(again, fresh)


def test_padding_is_not_written(tiny_base: Path) -> None:
    model = _titans(tiny_base)
    _open_gates(model)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), IDS], dim=1)  # one chunk of left padding
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones_like(IDS)], dim=1)
    with torch.no_grad():
        expected = model(input_ids=IDS).logits
        got = model(input_ids=padded, attention_mask=mask).logits[:, 4:]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_middle_layers() -> None:
    assert memory_layers(32, "middle") == [8, 16, 24]
    assert memory_layers(2, "middle") == [0, 1]
    assert memory_layers(4, [-1, 0]) == [0, 3]
