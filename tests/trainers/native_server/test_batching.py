"""Concurrent requests share a batch, and each gets the answer it gets alone: its own sampling,
its own prompt length, and for a titans version its own memory (one request's writes never
reach another's)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.service.serving.adapters import make_adapter
from tests.service.serving.titans_version import make_titans_version
from trainers.native_server import NativeModel, Sampling

TITANS, PLAIN = "acme/memo@1", "acme/plain@2"
GREEDY = Sampling(max_tokens=8, temperature=0.0, ignore_eos=True, logprobs=2)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> NativeModel:
    """A backend holding a titans version (memory chunks of 4) and a PEFT adapter; a wide window
    so that requests submitted together always share a batch."""
    root = tmp_path_factory.mktemp("store")
    model = NativeModel(str(tiny_base), window=0.3)
    model.load(TITANS, str(make_titans_version(tiny_base, root / "v1", seed=1) / "adapter"))
    model.load(PLAIN, str(make_adapter(tiny_base, root / "v2" / "adapter", seed=2)))
    return model


def _ids(native: NativeModel, prompt: str) -> list[int]:
    return list(native.tokenizer(prompt).input_ids)


def _fit(native: NativeModel, text: str, fits: Callable[[int], bool]) -> list[int]:
    """`text`, lengthened by a word at a time until its token count `fits`."""
    while not fits(len(_ids(native, text))):
        text += " a"
    return _ids(native, text)


def _together(
    native: NativeModel, model: str, prompts: list[list[int]], sampling: Sampling, sessions: list
) -> list:
    """Submit every request at once; their rows, once all are done."""
    futures = [native.submit(model, [p], sampling, session=s) for p, s in zip(prompts, sessions, strict=True)]
    return [future.result()[0] for future in futures]


def test_two_concurrent_sessions_share_a_batch_and_keep_their_own_memories(native: NativeModel) -> None:
    # Different lengths, equal modulo the chunk size (4), so they batch (one left-padded by whole
    # chunks); the second requests then start from equal unwritten tails, so need equal lengths.
    a1 = _ids(native, "Velo3 lives in the old harbour town.")
    first = [a1, _fit(native, "Mira keeps bees.", lambda n: n % 4 == len(a1) % 4 and n != len(a1))]
    a2 = _ids(native, "Q: Where does Velo3 live?\nA:")
    second = [a2, _fit(native, "Q: What?", lambda n: n == len(a2))]
    assert len(first[0]) % 4 == len(first[1]) % 4 and len(first[0]) != len(first[1])
    assert len(second[0]) == len(second[1])

    native.batch_sizes.clear()
    batched = _together(native, TITANS, first, GREEDY, ["a", "b"])
    batched += _together(native, TITANS, second, GREEDY, ["a", "b"])  # each from its own memory
    assert native.batch_sizes == [2, 2]
    kept = {name: native.sessions["acme"][(TITANS, name)] for name in ("a", "b")}

    alone = []
    for name, prompts in (("alone-a", (first[0], second[0])), ("alone-b", (first[1], second[1]))):
        for prompt in prompts:
            alone.append(native.submit(TITANS, [prompt], GREEDY, session=name).result()[0])
    assert native.batch_sizes[-4:] == [1, 1, 1, 1]

    order = [alone[0], alone[2], alone[1], alone[3]]  # a1, b1, a2, b2 as `batched`
    assert [row.tokens for row in batched] == [row.tokens for row in order]
    for got, want in zip(batched, order, strict=True):
        assert torch.allclose(torch.tensor(got.logprobs), torch.tensor(want.logprobs), atol=1e-4)
    assert (
        batched[2].tokens != _together(native, TITANS, [second[0]], GREEDY, [None])[0].tokens
    )  # memory mattered
    for name in ("a", "b"):
        own = native.sessions["acme"][(TITANS, f"alone-{name}")]
        for layer, state in kept[name].items():
            assert state.position == own[layer].position
            assert torch.allclose(state.weights[0], own[layer].weights[0], atol=1e-5)
            assert torch.allclose(state.pending, own[layer].pending, atol=1e-5)


def test_prompts_of_any_length_share_a_batch_and_answer_as_alone(native: NativeModel) -> None:
    prompts = [
        "Q: Where does Velo3 live?\nA:",
        "Hi",
        "A much longer prompt about the harbour town and its bees:",
    ]
    ids = [_ids(native, prompt) for prompt in prompts]
    native.batch_sizes.clear()
    batched = _together(native, PLAIN, ids, GREEDY, [None] * 3)
    alone = [native.submit(PLAIN, [prompt], GREEDY).result()[0] for prompt in ids]

    assert native.batch_sizes == [3, 1, 1, 1]
    for got, want in zip(batched, alone, strict=True):
        assert got.tokens == want.tokens
        assert torch.allclose(torch.tensor(got.logprobs), torch.tensor(want.logprobs), atol=1e-4)
        assert [t for t, _ in got.top[0]] == [t for t, _ in want.top[0]]


def test_a_seeded_sample_does_not_depend_on_its_batch(native: NativeModel) -> None:
    sampled = Sampling(max_tokens=6, temperature=1.0, seed=7, ignore_eos=True)
    prompt = _ids(native, "Q: Where does Velo3 live?\nA:")
    together = _together(native, PLAIN, [prompt, prompt, _ids(native, "Hi")], sampled, [None] * 3)
    alone = native.submit(PLAIN, [prompt], sampled).result()[0]

    assert together[0].tokens == together[1].tokens == alone.tokens
