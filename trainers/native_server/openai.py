"""OpenAI request fields in, vLLM-shaped answers out: what a client of the native backend sees.

The bodies follow vLLM 0.32's, field for field where a client reads them (checked side by side by
tests/service/serving/test_native_parity.py): completions' `logprobs` (`tokens`, `token_logprobs`,
`top_logprobs` with the chosen token first, then the `logprobs` best; `text_offset`), `echo`
(the prompt's tokens lead, the first with a null log-probability), chat's `logprobs.content`,
`usage`, `finish_reason`, and the stream's chunks. Unknown fields are ignored, as vLLM does.
"""

import time
import uuid
from dataclasses import dataclass
from typing import Any

from trainers.native_server.decoding import Row, Sampling, token_texts

__all__ = ["BadRequest", "Parsed", "completion_body", "parse", "stream_chunks"]

MAX_LOGPROBS = 20  # vLLM's default max_logprobs
MAX_CHOICES = 8  # the gateway's gateway_max_choices default (service/settings.py)
FINGERPRINT = "neuroplast-native"


class BadRequest(Exception):
    """A request vLLM would refuse with a 400, and the field at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Parsed:
    """A request ready to decode."""

    model: str
    prompts: list[list[int]]
    prompt_texts: list[str]
    sampling: Sampling
    n: int
    chat: bool
    stream: bool
    include_usage: bool
    session: str | None


def parse(body: dict[str, Any], tokenizer: Any, max_tokens: int, chat: bool) -> Parsed:
    """Check `body`'s fields as vLLM does and tokenize its prompt (or its chat messages)."""
    if chat:
        text = tokenizer.apply_chat_template(body.get("messages"), tokenize=False, add_generation_prompt=True)
        prompts, texts = [tokenizer(str(text), add_special_tokens=False).input_ids], [str(text)]
    else:
        prompts, texts = _prompts(body.get("prompt"), tokenizer)
    limit = _integer(body, "max_tokens", 0, max_tokens)
    limit = _integer(body, "max_completion_tokens", 0, max_tokens) if limit is None else limit
    temperature = _number(body, "temperature", 1.0)
    n = _integer(body, "n", 1, MAX_CHOICES) or 1
    if n > 1 and temperature == 0:
        raise BadRequest(f"n must be 1 when using greedy sampling, got {n}.")  # vLLM names no param
    logprobs = _logprobs(body, chat)
    session = body.get("session_id")
    if session is not None and not isinstance(session, str):
        raise BadRequest("session_id must be a string.", "session_id")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise BadRequest("stop must be a string or a list of strings.", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("seed must be an integer.", "seed")
    sampling = Sampling(
        max_tokens=(max_tokens if chat else 16) if limit is None else limit,
        temperature=temperature,
        top_p=_number(body, "top_p", 1.0),
        seed=seed,
        logprobs=logprobs,
        echo=bool(body.get("echo")) and not chat,
        stop=tuple(stop),
        ignore_eos=bool(body.get("ignore_eos")),
    )
    options = body.get("stream_options") or {}
    return Parsed(
        model=str(body.get("model")),
        prompts=prompts,
        prompt_texts=texts,
        sampling=sampling,
        n=n,
        chat=chat,
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        session=session,
    )


def _prompts(prompt: Any, tokenizer: Any) -> tuple[list[list[int]], list[str]]:
    """A completion's prompts as token ids and texts: a string, strings, token ids or lists of them."""
    one_of_ids = isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt)
    if isinstance(prompt, str) or one_of_ids:
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt:
        raise BadRequest("prompt must be a string, a list of strings or token ids.", "prompt")
    ids, texts = [], []
    for item in prompt:
        if isinstance(item, str):
            ids.append(tokenizer(item).input_ids)
            texts.append(item)
        elif isinstance(item, list) and item and all(isinstance(t, int) and t >= 0 for t in item):
            ids.append(list(item))
            texts.append(str(tokenizer.decode(item)))
        else:
            raise BadRequest("prompt must be a string, a list of strings or token ids.", "prompt")
    return ids, texts


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer.", name)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high} on this backend, got {value}.", name)
    return value


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadRequest(f"{name} must be a non-negative number.", name)
    return float(value)


def _logprobs(body: dict[str, Any], chat: bool) -> int | None:
    """Alternatives per token (None: no log-probabilities): `logprobs` (completions) or
    `logprobs: true` with `top_logprobs` (chat)."""
    if chat and not body.get("logprobs"):
        return None
    value = body.get("top_logprobs", 0) if chat else body.get("logprobs")
    if value is None:
        return 0 if chat else None
    name = "top_logprobs" if chat else "logprobs"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer.", name)
    if value > MAX_LOGPROBS:
        message = f"Requested sample logprobs of {value}, which is greater than max allowed: {MAX_LOGPROBS}"
        raise BadRequest(message, "logprobs")  # vLLM names `logprobs` for chat's top_logprobs too
    return value


@dataclass
class Answer:
    """One row as a client sees it: its text pieces (cut at a stop string) and finish reason."""

    index: int
    pieces: list[str]  # the text each kept token adds
    finish_reason: str
    stop_reason: str | None  # the stop string that ended it
    row: Row
    prompt_text: str


def answers(parsed: Parsed, rows: list[Row], tokenizer: Any) -> list[Answer]:
    """The rows in the order of their choice index (prompt by prompt, then choice by choice)."""
    out = []
    for index, row in enumerate(rows):
        pieces, stop = _cut(token_texts(tokenizer, row.tokens), parsed.sampling.stop)
        reason = "stop" if stop is not None else str(row.finish_reason)
        out.append(Answer(index, pieces, reason, stop, row, parsed.prompt_texts[index // parsed.n]))
    return out


def _cut(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], str | None]:
    """`pieces` up to the first stop string (excluded), and that string (None: none found)."""
    joined = "".join(pieces)
    found = sorted((joined.find(stop), stop) for stop in stops if stop in joined)
    if not found:
        return pieces, None
    at, stop = found[0]
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > at:
            kept.append(piece[: at - length])
            break
        kept.append(piece)
        length += len(piece)
    return kept, stop


def completion_body(parsed: Parsed, rows: list[Row], tokenizer: Any) -> dict[str, Any]:
    """The whole (non-streamed) answer, as vLLM's."""
    ident, created = _ident(parsed.chat), int(time.time())
    choices = []
    for answer in answers(parsed, rows, tokenizer):
        text = "".join(answer.pieces)
        choice: dict[str, Any] = {"index": answer.index}
        if parsed.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
            choice["logprobs"] = _chat_logprobs(answer, tokenizer, 0, len(answer.pieces))
        else:
            choice["text"] = answer.prompt_text + text if parsed.sampling.echo else text
            choice["logprobs"] = _completion_logprobs(answer, tokenizer, 0, len(answer.pieces), echo=True)
        choice |= {"finish_reason": answer.finish_reason, "stop_reason": answer.stop_reason}
        choices.append(choice)
    kind = "chat.completion" if parsed.chat else "text_completion"
    return {
        "id": ident,
        "object": kind,
        "created": created,
        "model": parsed.model,
        "choices": choices,
        "usage": _usage(parsed, rows),
        "system_fingerprint": FINGERPRINT,
    }


def stream_chunks(parsed: Parsed, rows: list[Row], tokenizer: Any) -> list[dict[str, Any]]:
    """The answer as vLLM streams it: per choice a chunk per token (chat: a role chunk first), the
    last one with the finish reason, then the usage chunk when `stream_options.include_usage`."""
    ident, created = _ident(parsed.chat), int(time.time())
    kind = "chat.completion.chunk" if parsed.chat else "text_completion"
    chunks = []

    def chunk(choice: dict[str, Any]) -> dict[str, Any]:
        return {"id": ident, "object": kind, "created": created, "model": parsed.model, "choices": [choice]}

    for answer in answers(parsed, rows, tokenizer):
        if parsed.chat:
            role = {"role": "assistant", "content": ""}
            chunks.append(
                chunk({"index": answer.index, "delta": role, "logprobs": None, "finish_reason": None})
            )
        pieces = answer.pieces or [""]
        for i, text in enumerate(pieces):
            end = min(i + 1, len(answer.pieces))
            last = i == len(pieces) - 1
            choice: dict[str, Any] = {"index": answer.index}
            if parsed.chat:
                if not text and not last:
                    continue  # vLLM sends no empty delta (a token that ends inside a character)
                choice["delta"] = {"content": text}
                choice["logprobs"] = _chat_logprobs(answer, tokenizer, i, end)
            else:
                echo = i == 0 and parsed.sampling.echo  # vLLM sends the prompt with the first token
                choice["text"] = answer.prompt_text + text if echo else text
                choice["logprobs"] = _completion_logprobs(answer, tokenizer, i, end, echo=echo)
            if not last:
                chunks.append(chunk(choice | {"finish_reason": None, "stop_reason": None}))
                continue
            choice |= {"finish_reason": answer.finish_reason, "stop_reason": answer.stop_reason}
            ending = chunk(choice)
            chunks.append(ending if parsed.include_usage else ending | {"system_fingerprint": FINGERPRINT})
    if parsed.include_usage:
        usage = {"id": ident, "object": kind, "created": created, "model": parsed.model, "choices": []}
        chunks.append(usage | {"usage": _usage(parsed, rows), "system_fingerprint": FINGERPRINT})
    return chunks


def _completion_logprobs(
    answer: Answer, tokenizer: Any, start: int, end: int, echo: bool
) -> dict[str, Any] | None:
    """Completions' `logprobs` for generated tokens [start, end), led by the prompt's when `echo`
    and the request echoes; None when the request asked for none."""
    row = answer.row
    k = row.sampling.logprobs
    if k is None:
        return None
    ids: list[int] = []
    values: list[float | None] = []
    tops: list[list[tuple[int, float]] | None] = []
    if echo and row.sampling.echo:
        ids, values, tops = list(row.prompt), list(row.prompt_logprobs), list(row.prompt_top)
    ids += row.tokens[start:end]
    values += row.logprobs[start:end]
    tops += row.top[start:end]
    tokens = [token_string(tokenizer, token) for token in ids]
    offset = 0 if echo else len("".join(answer.pieces[:start]))
    if not echo and row.sampling.echo:  # a later chunk of an echoed stream: after the prompt's tokens
        offset += sum(len(token_string(tokenizer, token)) for token in row.prompt)
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    top_logprobs: list[dict[str, float] | None] = []
    for token_text, value, top in zip(tokens, values, tops, strict=True):
        if value is None or top is None:
            top_logprobs.append(None)
            continue
        entry = {token_text: max(value, -9999.0)}
        for alternative, logprob in top:
            entry.setdefault(token_string(tokenizer, alternative), max(logprob, -9999.0))
        top_logprobs.append(entry)
    token_logprobs = [None if v is None else max(v, -9999.0) for v in values]
    return {
        "text_offset": offsets,
        "token_logprobs": token_logprobs,
        "tokens": tokens,
        "top_logprobs": top_logprobs,
    }


def _chat_logprobs(answer: Answer, tokenizer: Any, start: int, end: int) -> dict[str, Any] | None:
    """Chat's `logprobs.content` for generated tokens [start, end); None when not asked for."""
    row = answer.row
    if row.sampling.logprobs is None:
        return None

    def entry(token: int, logprob: float) -> dict[str, Any]:
        text = token_string(tokenizer, token)
        return {"token": text, "logprob": max(logprob, -9999.0), "bytes": list(text.encode())}

    content = []
    for i in range(start, end):
        item = entry(row.tokens[i], row.logprobs[i])
        item["top_logprobs"] = [entry(token, logprob) for token, logprob in row.top[i]]
        content.append(item)
    return {"content": content}


def token_string(tokenizer: Any, token: int) -> str:
    """A token's own text, as vLLM names it in log-probabilities: "" for a piece of a character."""
    text = str(tokenizer.decode([token]))
    return "" if text and set(text) == {"\ufffd"} else text


def _usage(parsed: Parsed, rows: list[Row]) -> dict[str, Any]:
    prompt_tokens = sum(len(prompt) for prompt in parsed.prompts)
    completion_tokens = sum(len(row.tokens) for row in rows)
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def _ident(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
