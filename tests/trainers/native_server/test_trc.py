"""The native backend serves a trc version as its own routed model, not as its PEFT approximation."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.data import Collator
from trainers.methods.trc.layer import ThalamicRouter
from trainers.native_server import NativeModel, create_app
from trainers.servable import load_version

NAME = "default/columns@1"
PROMPT = "Q: Where does Velo3 live?\nA:"
ROWS = [
    {"input_ids": [1, 40 + i, 41, 42, 43, 44, 45], "labels": [-100, -100, 41, 42, 43, 44, 45], "length": 7}
    for i in range(4)
]


@pytest.fixture(scope="module")
def trc_version(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """A trc version whose columns, router and hippocampal read all changed the model."""
    from trainers.methods.trc.config import TrcConfig
    from trainers.methods.trc.method import TrcMethod

    torch.manual_seed(1)
    method = TrcMethod(TrcConfig(r=4))
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), parent_dir=None)
    method.start_job("job-1", ROWS, seed=0)
    batch = Collator(pad_token_id=0)(ROWS)
    outputs = model(
        **{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}, output_hidden_states=True
    )
    method.training_loss(model, batch, outputs)
    method.after_optimizer_step(model, 1)  # the store holds the rows
    assert method.cortex is not None and method.cortex.read is not None
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.3)
    out = tmp_path_factory.mktemp("store") / "v1"
    (out / "memory").mkdir(parents=True)
    method.export_adapter(model, out / "adapter")
    method.save_memory(out / "memory")
    (out / "manifest.json").write_text(json.dumps({"method": "trc", "config": asdict(method.config)}))
    return out


def test_a_trc_version_is_served_as_its_routed_model(tiny_base: Path, trc_version: Path) -> None:
    native = NativeModel(str(tiny_base))
    api = TestClient(create_app(native))
    loaded = api.post(
        "/v1/load_lora_adapter", json={"lora_name": NAME, "lora_path": str(trc_version / "adapter")}
    )
    assert loaded.status_code == 200, loaded.text
    assert NAME in {m["id"] for m in api.get("/v1/models").json()["data"]}
    assert any(isinstance(module, ThalamicRouter) for module in native.versions[NAME].modules())

    body = {"model": NAME, "prompt": PROMPT, "max_tokens": 8, "temperature": 0.0, "ignore_eos": True}
    answer = api.post("/v1/completions", json=body)
    assert answer.status_code == 200, answer.text
    served = answer.json()["choices"][0]["text"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    reference = load_version(str(tiny_base), trc_version)
    out = reference.generate(
        input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0
    )
    assert served == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    assert not torch.allclose(reference(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-3)
    assert api.post("/v1/unload_lora_adapter", json={"lora_name": NAME}).status_code == 200
    assert NAME not in native.versions
