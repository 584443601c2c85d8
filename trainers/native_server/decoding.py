"""One batched generation: rows (a request's choices) decoded together, each with its own sampling.

A batch is one model (the base, one PEFT adapter or one separately loaded version) and up to
`MAX_BATCH` rows. The prompts are left-padded into one tensor and read in one forward pass, whose
logits also give the prompt's log-probabilities when a row asks for them (`echo` with `logprobs`);
then every decoding step feeds each row's last token. A row that finished is fed padding (attention
mask 0) until the whole batch is done, which changes nothing for the others.

Log-probabilities are the model's own (log-softmax of the raw logits, before temperature or
top-p), as vLLM reports them by default. Sampling draws from each row's own generator (seeded by
the request's `seed`), so a seeded answer does not depend on which requests shared its batch.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from transformers import DynamicCache

__all__ = ["Row", "Sampling", "decode_batch", "token_texts"]


@dataclass(frozen=True)
class Sampling:
    """What a request asks of each of its choices (the OpenAI fields, parsed and checked)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None  # alternatives per token; None: no log-probabilities
    echo: bool = False  # the prompt's tokens (and their log-probabilities) lead the answer
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass
class Row:
    """One sequence of a batch: a prompt, how to continue it, and what came out.

    Attributes:
        prompt: Token ids.
        sampling: The request's sampling.
        generator: Draws this row's samples (seeded per request and choice).
        memory: Where a stateful version's memory starts (None: fresh).
        tokens, logprobs, top: Generated ids, their log-probabilities and each step's best
            alternatives (id, log-probability), most likely first.
        prompt_logprobs, prompt_top: The same for the prompt (first token None), when echoed.
        finish_reason: "stop" or "length" once done.
        memory_after: A stateful version's memory after every token but the last, once done.
    """

    prompt: list[int]
    sampling: Sampling
    generator: torch.Generator | None = None
    memory: Any = None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    prompt_logprobs: list[float | None] = field(default_factory=list)
    prompt_top: list[list[tuple[int, float]] | None] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    memory_after: Any = None
    _detokenizer: "IncrementalText | None" = None


class Batch:
    """How `decode_batch` runs a model: its forward pass and, for stateful versions, its memory.

    Args:
        forward: Calls the model (`input_ids`, `attention_mask`, `position_ids`, `cache`,
            `use_cache`, `logits_to_keep`) and returns its output.
        use_cache: Whether to decode with a key-value cache (not where a version's config turns it off).
        memory: Hooks of a stateful version, or None.
    """

    def __init__(self, forward: Any, use_cache: bool, memory: "MemoryHooks | None" = None) -> None:
        self.forward, self.use_cache, self.memory = forward, use_cache, memory


class MemoryHooks(Protocol):
    """A stateful version's memory as the batch sees it (`trainers/native_server/memory.py`)."""

    def start(self, rows: list[Row]) -> None:
        """Start each row of the next call from its own `memory` (fresh when None)."""

    def row_state(self, rows: list[Row], index: int) -> Any:
        """Row `index`'s memory now, as that row alone would have left it."""


def decode_batch(
    batch: Batch, rows: list[Row], tokenizer: Any, eos: set[int], pad: int, max_seconds: float
) -> None:
    """Generate every row's continuation in one batch (results land on the rows)."""
    started = time.monotonic()
    lengths = [len(row.prompt) for row in rows]
    width = max(lengths)
    ids = torch.tensor([[pad] * (width - n) + row.prompt for n, row in zip(lengths, rows, strict=True)])
    mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
    for row in rows:
        row._detokenizer = IncrementalText(tokenizer) if row.sampling.stop else None
    if batch.memory is not None:
        batch.memory.start(rows)
    echo = any(row.sampling.echo and row.sampling.logprobs is not None for row in rows)
    cache = DynamicCache() if batch.use_cache else None
    inputs = ids
    while True:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -inputs.shape[1] :]
        output = batch.forward(
            input_ids=inputs,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=batch.use_cache,
            logits_to_keep=0 if echo else 1,
        )
        logits = output.logits.float()  # (batch, seq or 1, vocab)
        if echo:
            _prompt_logprobs(rows, logits, ids, lengths)
            echo = False
        for i, row in enumerate(rows):
            if row.finish_reason is None and row.sampling.max_tokens == 0:  # the prompt only
                row.finish_reason = "length"
                row.memory_after = batch.memory.row_state(rows, i) if batch.memory is not None else None
        active = [i for i, row in enumerate(rows) if row.finish_reason is None]
        if not active:
            return
        chosen = _step(rows, active, logits[:, -1], tokenizer, eos)
        out_of_time = time.monotonic() - started >= max_seconds
        for i in active:
            row = rows[i]
            if row.finish_reason is None and (out_of_time or len(row.tokens) >= row.sampling.max_tokens):
                row.finish_reason = "length"
            if row.finish_reason is not None and batch.memory is not None:
                row.memory_after = batch.memory.row_state(rows, i)
        if all(row.finish_reason is not None for row in rows):
            return
        step = torch.tensor([[chosen.get(i, pad)] for i in range(len(rows))])
        live = [[int(i in chosen and rows[i].finish_reason is None)] for i in range(len(rows))]
        mask = torch.cat([mask, torch.tensor(live)], dim=1)
        ids = torch.cat([ids, step], dim=1)
        inputs = step if batch.use_cache else ids


def _prompt_logprobs(rows: list[Row], logits: torch.Tensor, ids: torch.Tensor, lengths: list[int]) -> None:
    """Each echoed prompt token's log-probability given the tokens before it (the first: None)."""
    width = ids.shape[1]
    for i, row in enumerate(rows):
        if not (row.sampling.echo and row.sampling.logprobs is not None):
            continue
        start = width - lengths[i]
        logprobs = torch.log_softmax(logits[i, start : width - 1], dim=-1)  # predicts tokens start+1..
        targets = ids[i, start + 1 : width]
        picked = logprobs.gather(-1, targets[:, None])[:, 0].tolist()
        row.prompt_logprobs = [None, *picked]
        row.prompt_top = [None, *(_top(logprobs[j], row.sampling.logprobs) for j in range(len(picked)))]


def _step(
    rows: list[Row], active: list[int], logits: torch.Tensor, tokenizer: Any, eos: set[int]
) -> dict[int, int]:
    """Choose each active row's next token and record it; returns the tokens by row index."""
    logprobs = torch.log_softmax(logits, dim=-1)  # (batch, vocab)
    greedy = logits.argmax(-1).tolist()
    chosen = {}
    for i in active:
        row, sampling = rows[i], rows[i].sampling
        token = greedy[i] if sampling.temperature == 0 else _sample(logits[i], sampling, row.generator)
        chosen[i] = token
        row.tokens.append(token)
        row.logprobs.append(float(logprobs[i, token]))
        if sampling.logprobs is not None:
            row.top.append(_top(logprobs[i], sampling.logprobs))
        if token in eos and not sampling.ignore_eos:
            row.finish_reason = "stop"
        elif row._detokenizer is not None:
            row.text += row._detokenizer.push(token)
            if any(stop in row.text for stop in sampling.stop):
                row.finish_reason = "stop"
    return chosen


def _top(logprobs: torch.Tensor, k: int) -> list[tuple[int, float]]:
    if k == 0:
        return []
    values, indices = logprobs.topk(k)
    return list(zip(indices.tolist(), values.tolist(), strict=True))


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    """A token drawn at the request's temperature from its top-p nucleus."""
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        outside = ordered.cumsum(-1) - ordered > sampling.top_p  # keeps at least the most likely
        probs = torch.zeros_like(probs).scatter(0, order, ordered.masked_fill(outside, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))


class IncrementalText:
    """Token texts in linear time (decoding the whole answer at every token is quadratic): each
    push decodes a window from the token before the last emitted text, so tokens that merge with
    their neighbours (a leading space, a multi-byte character) come out as in the whole answer."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.ids, self.start, self.emitted = tokenizer, [], 0, 0

    def push(self, token: int) -> str:
        """The text `token` adds ("" while a character's bytes are not all there yet)."""
        self.ids.append(token)
        before = self._decode(self.start, self.emitted)
        after = self._decode(self.start, len(self.ids))
        if after.endswith("\ufffd"):
            return ""
        self.start, self.emitted = self.emitted, len(self.ids)
        return after[len(before) :]

    def rest(self) -> str:
        """What an answer that ends inside a character adds at its end ("\ufffd", as decoded whole)."""
        if self.emitted == len(self.ids):
            return ""
        return self._decode(self.start, len(self.ids))[len(self._decode(self.start, self.emitted)) :]

    def _decode(self, start: int, end: int) -> str:
        return str(self.tokenizer.decode(self.ids[start:end], skip_special_tokens=True))


def token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text each token of `ids` adds; joined, they are `ids` decoded whole."""
    text = IncrementalText(tokenizer)
    texts = [text.push(token) for token in ids]
    if texts:
        texts[-1] += text.rest()
    return texts
