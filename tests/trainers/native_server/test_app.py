"""The native backend's own guards, in-process: it answers every tenant one generation at a time,
so no request may hold it for long whatever sits in front of it, and decoding costs the same per
token however long the answer grows."""

import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoTokenizer
from transformers.models.llama.modeling_llama import LlamaModel

from tests.service.serving.adapters import make_adapter
from tests.service.serving.titans_version import make_titans_version
from trainers.native_server import NativeModel, Sampling, create_app, token_texts

PROMPT = "Q: Where does Velo3 live?\nA:"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> dict[str, Path]:
    """A PEFT adapter and a titans version on the tiny base, by the name they are loaded under."""
    root = tmp_path_factory.mktemp("store")
    titans = make_titans_version(tiny_base, root / "v1", seed=1)
    return {
        "default/plain@2": make_adapter(tiny_base, root / "v2" / "adapter", seed=2),
        "default/memo@1": titans / "adapter",
    }


def test_max_tokens_above_the_backends_cap_is_refused(tiny_base: Path) -> None:
    api = TestClient(create_app(NativeModel(str(tiny_base), max_tokens=32)))
    body = {"model": str(tiny_base), "prompt": PROMPT, "temperature": 0.0, "ignore_eos": True}

    huge = api.post("/v1/completions", json=body | {"max_tokens": 100_000_000})
    chat = api.post(
        "/v1/chat/completions",
        json={
            "model": str(tiny_base),
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 33,
        },
    )
    wrong = api.post("/v1/completions", json=body | {"max_tokens": "8"})
    at_cap = api.post("/v1/completions", json=body | {"max_tokens": 32})

    assert (huge.status_code, huge.json()["error"]["param"]) == (400, "max_tokens")
    assert "32" in huge.json()["error"]["message"]
    assert (chat.status_code, chat.json()["error"]["param"]) == (400, "max_completion_tokens")
    assert (wrong.status_code, wrong.json()["error"]["param"]) == (400, "max_tokens")
    assert at_cap.status_code == 200 and at_cap.json()["usage"]["completion_tokens"] == 32


def test_a_generation_stops_at_the_time_limit_and_frees_the_backend(tiny_base: Path) -> None:
    # 1000 tokens take this model well over a second; the limit allows a fifth of one.
    api = TestClient(create_app(NativeModel(str(tiny_base), max_tokens=1000, max_seconds=0.2)))
    body = {
        "model": str(tiny_base),
        "prompt": PROMPT,
        "max_tokens": 1000,
        "temperature": 0.0,
        "ignore_eos": True,
    }

    started = time.monotonic()
    long = api.post("/v1/completions", json=body)
    took = time.monotonic() - started
    short = api.post("/v1/completions", json=body | {"max_tokens": 4})

    assert long.status_code == 200
    assert 0 < long.json()["usage"]["completion_tokens"] < 1000
    assert long.json()["choices"][0]["finish_reason"] == "length"
    assert took < 5
    assert short.json()["usage"]["completion_tokens"] == 4


def test_decoding_reads_one_new_token_per_step_and_detokenizes_in_linear_time(
    tiny_base: Path, versions: dict[str, Path]
) -> None:
    native = NativeModel(str(tiny_base))
    for name, path in versions.items():
        native.load(name, str(path))
    widths: list[int] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]
        widths.append(tokens.shape[1])

    decoders = [next(m for m in native.model.modules() if isinstance(m, LlamaModel))]
    decoders.append(next(m for m in native.versions["default/memo@1"].modules() if isinstance(m, LlamaModel)))
    for decoder in decoders:
        decoder.register_forward_pre_hook(record, with_kwargs=True)
    prompt_tokens = len(native.tokenizer(PROMPT).input_ids)
    greedy = Sampling(max_tokens=12, temperature=0.0, ignore_eos=True)
    for model in (str(tiny_base), *versions):
        widths.clear()
        native.complete(model, PROMPT, greedy)
        assert widths == [prompt_tokens] + [1] * 11, model  # the key-value cache holds the rest

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    ids = torch.randint(0, tokenizer.vocab_size, (400,), generator=torch.Generator().manual_seed(0)).tolist()
    decoded = 0
    decode = tokenizer.decode

    def counting(tokens: list[int], **kwargs: bool) -> str:
        nonlocal decoded
        decoded += len(tokens)
        return str(decode(tokens, **kwargs))

    tokenizer.decode = counting  # type: ignore[method-assign]
    texts = token_texts(tokenizer, ids)
    assert "".join(texts) == decode(ids, skip_special_tokens=True)
    assert len(texts) == 400
    assert decoded < 10 * 400  # decoding the whole answer at each token would be 80,000


def test_a_key_guards_the_v1_routes(tiny_base: Path) -> None:
    api = TestClient(create_app(NativeModel(str(tiny_base)), api_key="replica-key"))

    assert api.get("/health").status_code == 200
    assert api.get("/v1/models").status_code == 401
    assert api.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get("/v1/models", headers={"Authorization": "Bearer replica-key"}).status_code == 200
