"""The native backend answers OpenAI requests as vLLM does: the same requests go to a `lora`
adapter on a real vLLM server and to the same adapter on the native backend, and the answers
have the same shape, the same greedy tokens and texts, and log-probabilities within 0.05.

Why 0.05: both compute in float32 here, but vLLM's CPU kernels (fused attention, its own LoRA
matmuls) sum in other orders than PyTorch's; measured differences are below 0.01
(docs/serving.md), and a wrong prompt offset or a temperature applied to the log-probabilities
would be off by far more than 0.05.
"""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from trainers.native_server import NativeModel, create_app

pytestmark = pytest.mark.vllm

NAME = "acme/parity@1"
PROMPT = "Q: Where does Velo3 live?\nA:"
CHAT = [{"role": "user", "content": "Where does Velo3 live?"}]
TOLERANCE = 0.05
# vLLM's own additions to the OpenAI bodies, which the native backend does not produce.
EXTENSIONS = {"prompt_logprobs", "prompt_token_ids", "token_ids", "routed_experts", "kv_transfer_params"}

COMPLETIONS = {
    "scoring (lm-evaluation-harness)": {"prompt": PROMPT, "echo": True, "logprobs": 0, "max_tokens": 0},
    "echo with alternatives": {
        "prompt": PROMPT,
        "echo": True,
        "logprobs": 2,
        "max_tokens": 3,
        "temperature": 0,
    },
    "logprobs": {"prompt": PROMPT, "logprobs": 1, "max_tokens": 6, "temperature": 0, "ignore_eos": True},
    "stop": {"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "ignore_eos": True, "stop": [" f f"]},
    "prompts and token ids": {
        "prompt": [PROMPT, "Hello"],
        "max_tokens": 3,
        "temperature": 0,
        "ignore_eos": True,
    },
    "token ids": {"prompt": [1, 54, 31, 300], "max_tokens": 3, "temperature": 0, "ignore_eos": True},
    "n sampled": {
        "prompt": PROMPT,
        "n": 3,
        "max_tokens": 4,
        "temperature": 1.0,
        "seed": 5,
        "ignore_eos": True,
    },
    "unknown field": {"prompt": PROMPT, "max_tokens": 2, "temperature": 0, "no_such_field": 1},
}
CHATS = {
    "chat logprobs": {
        "messages": CHAT,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    },
    "chat": {"messages": CHAT, "max_tokens": 3, "temperature": 0, "ignore_eos": True},
}
REFUSED = {
    "huge max_tokens": ("completions", {"prompt": PROMPT, "max_tokens": 100_000_000}),
    "negative max_tokens": ("completions", {"prompt": PROMPT, "max_tokens": -1}),
    "too many logprobs": ("completions", {"prompt": PROMPT, "max_tokens": 2, "logprobs": 50}),
    "too many top_logprobs": (
        "chat/completions",
        {"messages": CHAT, "max_tokens": 2, "logprobs": True, "top_logprobs": 50},
    ),
    "n greedy": ("completions", {"prompt": PROMPT, "max_tokens": 2, "temperature": 0, "n": 2}),
}


@pytest.fixture(scope="module")
def backends(vllm_url: str, serving_base: Path, versions: list[Path]) -> dict[str, Any]:
    """The adapter of `versions[0]` loaded under one name on vLLM and on the native backend."""
    adapter = str(versions[0] / "adapter")
    vllm = httpx.Client(base_url=f"{vllm_url}/v1", timeout=120)
    loaded = vllm.post("/load_lora_adapter", json={"lora_name": NAME, "lora_path": adapter})
    assert loaded.status_code == 200, loaded.text
    native = TestClient(create_app(NativeModel(str(serving_base))), base_url="http://native/v1")
    assert (
        native.post("/load_lora_adapter", json={"lora_name": NAME, "lora_path": adapter}).status_code == 200
    )
    yield {"vllm": vllm, "native": native}
    vllm.post("/unload_lora_adapter", json={"lora_name": NAME})


def _both(backends: dict[str, Any], path: str, body: dict[str, Any]) -> tuple[Any, Any]:
    answers = [backends[name].post(f"/{path}", json={"model": NAME, **body}) for name in ("vllm", "native")]
    return answers[0], answers[1]


@pytest.mark.parametrize("case", [*COMPLETIONS, *CHATS])
def test_an_answer_has_vllms_shape_tokens_and_logprobs(backends: dict[str, Any], case: str) -> None:
    path, body = (
        ("completions", COMPLETIONS[case]) if case in COMPLETIONS else ("chat/completions", CHATS[case])
    )
    vllm, native = _both(backends, path, body)

    assert (native.status_code, vllm.status_code) == (200, 200), native.text
    _same_shape(vllm.json(), native.json())
    if body.get("max_tokens") == 0:
        # vLLM decodes one token it does not return and counts it in `usage`; the native backend
        # counts what it returns.
        assert vllm.json()["usage"]["completion_tokens"] - native.json()["usage"]["completion_tokens"] == 1
        _same_values(vllm.json()["choices"], native.json()["choices"])
    elif body.get("temperature") == 0:
        _same_values(vllm.json(), native.json())
    else:  # sampled: the same number of choices and tokens, each its own draw
        assert [c["finish_reason"] for c in vllm.json()["choices"]] == [
            c["finish_reason"] for c in native.json()["choices"]
        ]


@pytest.mark.parametrize("path", ["completions", "chat/completions"])
def test_a_stream_has_vllms_chunks(backends: dict[str, Any], path: str) -> None:
    if path == "completions":
        body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0, "logprobs": 1, "echo": True}
        body |= {"ignore_eos": True}
    else:
        body = {"messages": CHAT, "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    vllm, native = _both(backends, path, body)

    expected, got = _events(vllm.text), _events(native.text)
    # vLLM may put several tokens in one chunk when it decodes faster than it sends; compared are
    # each chunk's shape, the whole text, the tokens with their log-probabilities, and the ends.
    kinds = {_kind(chunk): chunk for chunk in reversed(expected)}
    assert {_kind(chunk) for chunk in got} >= set(kinds)
    for chunk in got:
        if _kind(chunk) in kinds:  # vLLM may have merged every middle chunk away
            _same_shape(_without_values(kinds[_kind(chunk)]), _without_values(chunk))
    assert _joined(got) == _joined(expected)
    _same_values(_logprobs(expected), _logprobs(got))
    assert got[-1]["usage"] == expected[-1]["usage"] | {"prompt_tokens_details": None}
    assert got[-2]["choices"][0]["finish_reason"] == expected[-2]["choices"][0]["finish_reason"]
    assert native.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("case", REFUSED)
def test_a_request_vllm_refuses_is_refused_with_its_status(backends: dict[str, Any], case: str) -> None:
    path, body = REFUSED[case]
    vllm, native = _both(backends, path, body)

    assert vllm.status_code == native.status_code == 400
    assert native.json()["error"]["param"] == vllm.json()["error"]["param"]


def test_n_above_the_gateways_limit_is_refused_by_the_backend_too(backends: dict[str, Any]) -> None:
    # vLLM alone accepts n=9; the gateway refuses it (gateway_max_choices, 8) for either backend,
    # and the native backend refuses it itself, since every tenant waits for its batches.
    native = backends["native"].post("/completions", json={"model": NAME, "prompt": PROMPT, "n": 9})
    assert (native.status_code, native.json()["error"]["param"]) == (400, "n")


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def _kind(chunk: dict[str, Any]) -> tuple[bool, ...]:
    """Usage, role (chat's first), middle or finishing chunk."""
    choice = chunk["choices"][0] if chunk["choices"] else {}
    return bool(choice), "role" in choice.get("delta", {}), choice.get("finish_reason") is not None


def _joined(chunks: list[dict[str, Any]]) -> str:
    choices = [choice for chunk in chunks for choice in chunk["choices"]]
    return "".join(choice.get("text") or choice.get("delta", {}).get("content") or "" for choice in choices)


def _logprobs(chunks: list[dict[str, Any]]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": []}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for key, values in (choice.get("logprobs") or {}).items():
                merged.setdefault(key, []).extend(values)
    merged.pop("text_offset", None)  # offsets of merged chunks are checked by the answers' test
    return merged


def _without_values(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk with its first choice's lists cut to one item (chunks hold any number of tokens)."""
    if not chunk["choices"]:
        return chunk
    choice = dict(chunk["choices"][0])
    if isinstance(choice.get("logprobs"), dict) and "tokens" in choice["logprobs"]:
        choice["logprobs"] = {key: values[:1] for key, values in choice["logprobs"].items()}
    return chunk | {"choices": [choice]}


def _same_shape(want: Any, have: Any, where: str = "") -> None:
    """`have` has every key `want` has that an OpenAI client reads, with values of the same kind;
    vLLM's own extras (`kv_transfer_params`, `token_ids`, ...) are null and may be absent."""
    if isinstance(want, dict):
        assert isinstance(have, dict), where
        for key, value in want.items():
            if key in EXTENSIONS or (value is None and key not in have):
                continue
            assert key in have, f"{where}.{key} missing"
            if key == "top_logprobs" and isinstance(value, list) and "content" not in where:
                assert len(have[key]) == len(value), where  # keyed by token: `_same_alternatives`
                continue
            _same_shape(value, have[key], f"{where}.{key}")
    elif isinstance(want, list) and where.endswith(".bytes"):
        # A token's UTF-8 bytes, as many as it has: an alternative of the same rank may be another
        # token (`_same_ranked`), or one vLLM names '' with no bytes.
        assert isinstance(have, list) and all(isinstance(byte, int) for byte in have), where
    elif isinstance(want, list):
        assert isinstance(have, list) and len(have) == len(want), where
        for i, (a, b) in enumerate(zip(want, have, strict=True)):
            _same_shape(a, b, f"{where}[{i}]")
    elif want is not None and not isinstance(want, int | float) and where.split(".")[-1] not in ("id",):
        assert type(have) is type(want), where


def _same_values(want: Any, have: Any, where: str = "") -> None:
    """Texts, tokens and finish reasons equal; log-probabilities within TOLERANCE."""
    if isinstance(want, dict):
        for key, value in want.items():
            if key in ("id", "created", "system_fingerprint") or key in EXTENSIONS or key not in have:
                continue
            if key == "top_logprobs" and isinstance(value, list) and any(isinstance(v, dict) for v in value):
                if "token" in next(v for v in value if v is not None):  # chat: a list of entries
                    _same_ranked(value, have[key], f"{where}.{key}")
                    continue
                _same_alternatives(value, have[key], where)
                continue
            _same_values(value, have[key], f"{where}.{key}")
    elif isinstance(want, list):
        for i, (a, b) in enumerate(zip(want, have, strict=True)):
            _same_values(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert abs(want - have) <= TOLERANCE, f"{where}: {want} vs {have}"
    else:
        assert want == have, f"{where}: {want!r} vs {have!r}"


def _same_ranked(want: list[dict[str, Any]], have: list[dict[str, Any]], where: str) -> None:
    """Chat's alternatives, by rank: as many; the first the same; a token both name within
    TOLERANCE. Near-ties may swap which token takes a rank, and vLLM may name an alternative ''
    (seen: its second alternative of the first token, 'l' at -5.696 here and '' at -5.698 there)."""
    assert len(want) == len(have), f"{where}: {want} vs {have}"
    _same_values(want[0], have[0], f"{where}[0]")
    theirs = {entry["token"]: entry["logprob"] for entry in have}
    for entry in want[1:]:
        if entry["token"] in theirs:
            assert abs(entry["logprob"] - theirs[entry["token"]]) <= TOLERANCE, f"{where}: {want} vs {have}"


def _same_alternatives(want: list[Any], have: list[Any], where: str) -> None:
    """Per token: as many alternatives; the chosen token (first) equal; each alternative both name
    within TOLERANCE (near-ties may swap which ones make the top k)."""
    for i, (a, b) in enumerate(zip(want, have, strict=True)):
        if a is None:
            assert b is None, f"{where}[{i}]"
            continue
        assert len(a) == len(b) and next(iter(a)) == next(iter(b)), f"{where}[{i}]: {a} vs {b}"
        for token in a.keys() & b.keys():
            assert abs(a[token] - b[token]) <= TOLERANCE, f"{where}[{i}][{token!r}]"
