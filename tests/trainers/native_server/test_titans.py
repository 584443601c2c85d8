"""The native backend serves a titans version: its own model, fresh memory per request, sessions."""

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoTokenizer

from tests.service.serving.adapters import make_adapter
from tests.service.serving.titans_version import make_titans_version
from trainers.native_server import NativeModel, create_app, engine
from trainers.servable import load_version

NAME = "default/memo@1"
FIRST, SECOND = "Q: Where does Velo3 live?\nA:", "Q: And who is Velo3?\nA:"


@pytest.fixture(scope="module")
def titans_version(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    return make_titans_version(tiny_base, tmp_path_factory.mktemp("store") / "v1", seed=1)


def _greedy(model: torch.nn.Module, tokenizer: AutoTokenizer, prompt: str) -> str:
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    out = model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
    return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_a_titans_version_answers_from_its_own_memory_and_a_session_keeps_it(
    tiny_base: Path, titans_version: Path, tmp_path: Path
) -> None:
    native = NativeModel(str(tiny_base))
    api = TestClient(create_app(native))
    loaded = api.post(
        "/v1/load_lora_adapter", json={"lora_name": NAME, "lora_path": str(titans_version / "adapter")}
    )
    assert loaded.status_code == 200, loaded.text
    adapter = make_adapter(tiny_base, tmp_path / "v2" / "adapter", seed=2)  # a PEFT version beside it
    api.post("/v1/load_lora_adapter", json={"lora_name": "default/plain@2", "lora_path": str(adapter)})
    assert {model["id"] for model in api.get("/v1/models").json()["data"]} >= {NAME, "default/plain@2"}

    def complete(prompt: str, **extra: str) -> str:
        body = {"model": NAME, "prompt": prompt, "max_tokens": 8, "temperature": 0.0, "ignore_eos": True}
        answer = api.post("/v1/completions", json=body | extra)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["choices"][0]["text"])

    first, second_alone = complete(FIRST, session_id="s1"), complete(SECOND)
    second_in_session = complete(SECOND, session_id="s1")

    # The reference: the same version loaded in-process, the session's memory carried by hand.
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    reference = load_version(str(tiny_base), titans_version)
    assert first == _greedy(reference, tokenizer, FIRST)
    session = reference.memory_state()
    assert second_alone == _greedy(reference, tokenizer, SECOND)
    reference.start_memory(session)
    assert second_in_session == _greedy(reference, tokenizer, SECOND)
    kept = native.sessions["default"][(NAME, "s1")]["0"]
    assert torch.equal(kept.weights[0], reference.memory_state()["0"].weights[0])
    first_tokens, second_tokens = (len(tokenizer(prompt).input_ids) for prompt in (FIRST, SECOND))
    assert kept.position == first_tokens + 7 + second_tokens + 7  # every token but each answer's last

    plain = api.post(
        "/v1/completions", json={"model": "default/plain@2", "prompt": FIRST, "session_id": "s1"}
    )
    assert plain.status_code == 400 and plain.json()["error"]["param"] == "session_id"
    assert api.post("/v1/unload_lora_adapter", json={"lora_name": NAME}).status_code == 200
    assert not any(native.sessions.values()) and NAME not in native.versions


def test_a_tenant_keeps_its_sessions_however_many_another_one_opens(
    tiny_base: Path, titans_version: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_SESSIONS", 2)
    native = NativeModel(str(tiny_base))
    api = TestClient(create_app(native))
    for tenant in ("acme", "rival"):
        loaded = api.post(
            "/v1/load_lora_adapter",
            json={"lora_name": f"{tenant}/memo@1", "lora_path": str(titans_version / "adapter")},
        )
        assert loaded.status_code == 200, loaded.text

    def complete(tenant: str, prompt: str, session: str | None = None) -> str:
        body = {"model": f"{tenant}/memo@1", "prompt": prompt, "max_tokens": 8, "temperature": 0.0}
        answer = api.post("/v1/completions", json=body | {"ignore_eos": True, "session_id": session})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["choices"][0]["text"])

    complete("acme", FIRST, "kept")
    complete("acme", FIRST, "reference")
    in_session = complete("acme", SECOND, "reference")
    for session in ("kept", "a", "b", "c"):  # the other tenant's own "kept" too
        complete("rival", FIRST, session)
    continued = complete("acme", SECOND, "kept")

    assert in_session != complete("acme", SECOND)  # the session's memory changes the answer
    assert continued == in_session
    assert len(native.sessions["rival"]) == 2  # the other tenant only pushed out its own
