"""The native backend: transformers + peft behind vLLM's routes, for methods vLLM cannot run.

Run as its own process (`python -m trainers.native_server --model BASE --port P`); the control
plane never imports this module, since it imports torch. It speaks the subset of vLLM's API the
serving tier uses: `/health`, `/v1/models`, `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`,
`/v1/completions` and `/v1/chat/completions` (streaming included), with vLLM's bodies.
One generation runs at a time; a streamed answer is generated whole, then sent token by token,
so it comes wholly from the adapter it started on. Since every tenant waits for that one
generation, the backend bounds it itself, whatever sits in front of it: `max_tokens` above
`--max-tokens` is a 400, and a generation stops after `--max-seconds` (finish_reason `length`).
Given `VLLM_API_KEY` (as vLLM reads it), the `/v1` routes answer only requests that carry it.

A version is loaded from the `adapter/` folder the tier names. A plain PEFT adapter joins the
shared multi-adapter `PeftModel`; a version whose method names its own loader in
`trainers.contracts.methods` (`titans`, `trc`) is loaded by `trainers.servable.load_version` as a model of
its own. A version that carries a memory across calls (`trainers.servable.StatefulVersion`) reads
every request from a fresh memory, or, when the body names a `session_id`, from the memory the
previous request of that session left (kept for each tenant's `MAX_SESSIONS` most recent
sessions, so one tenant's sessions never push out another's).
"""

import argparse
import asyncio
import hmac
import json
import os
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.contracts.methods import version_loader
from trainers.servable import StatefulVersion, load_version, version_method

# Session memories kept per tenant, least recently used dropped first. A titans session with the
# default config holds about 1 MB of memory per attached layer (docs/serving.md).
MAX_SESSIONS = 64
# The gateway's own defaults (gateway_max_tokens; native_max_seconds in service/settings.py).
MAX_TOKENS, MAX_SECONDS = 4096, 60.0

Sessions = OrderedDict[tuple[str, str], Any]  # (model, session id) -> memory, least recent first


class NativeModel:
    """A base model with any number of named LoRA adapters and of separately loaded versions.

    `generate` picks one per call.

    Args:
        base: The base model's folder or hub id.
        max_tokens: Largest `max_tokens` of one request.
        max_seconds: Longest generation of one request.
    """

    def __init__(self, base: str, max_tokens: int = MAX_TOKENS, max_seconds: float = MAX_SECONDS) -> None:
        self.base = base
        self.max_tokens, self.max_seconds = max_tokens, max_seconds
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.model: Any = AutoModelForCausalLM.from_pretrained(base).eval()
        self.adapters: dict[str, str] = {}
        self.versions: dict[str, Any] = {}  # by name: versions with a loader of their own
        self.sessions: defaultdict[str, Sessions] = defaultdict(OrderedDict)  # by tenant
        self.lock = threading.Lock()

    def load(self, name: str, path: str) -> None:
        version_dir = Path(path).parent
        with self.lock:
            if has_own_loader(version_dir):
                self.versions[name] = load_version(self.base, version_dir)
            elif isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
            self.adapters[name] = path

    def unload(self, name: str) -> None:
        with self.lock:
            if name in self.versions:
                del self.versions[name]
                sessions = self.sessions[tenant_of(name)]
                for key in [key for key in sessions if key[0] == name]:
                    del sessions[key]
            else:
                self.model.delete_adapter(name)
            del self.adapters[name]

    def keeps_sessions(self, model: str) -> bool:
        """Whether `model` carries a memory from one request to the next of a session."""
        return isinstance(self.versions.get(model), StatefulVersion)

    def generate(self, model: str, prompt: str, body: dict[str, Any]) -> tuple[list[str], int, str]:
        """Token texts of the continuation, the prompt length in tokens and the finish reason.

        `generate` decodes with the key-value cache (one token per forward pass after the prompt)
        for the base model, PEFT adapters and titans versions, whose memory continues across
        cached steps (trainers/methods/titans/layer.py). A trc version turns the cache off: its
        router and read pool the whole prefix, which the cache does not keep
        (trainers/methods/trc/model.py), so each of its tokens recomputes the prefix and
        `max_seconds` is what bounds it.
        """
        ids = self.tokenizer(prompt, return_tensors="pt").input_ids  # (1, prompt)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        temperature = float(body.get("temperature", 1.0))
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        options["max_time"] = self.max_seconds  # checked after every token
        if temperature > 0:
            options |= {"temperature": temperature, "top_p": float(body.get("top_p", 1.0))}
        if body.get("ignore_eos"):
            options["min_new_tokens"] = max_tokens
        with self.lock, torch.no_grad():
            started = time.monotonic()
            if model in self.versions:
                out = self._version_generate(model, ids, options, body.get("session_id"))
            elif model == self.base or not isinstance(self.model, PeftModel):
                out = self._base_generate(ids, options)
            else:
                self.model.set_adapter(model)
                out = self.model.generate(input_ids=ids, pad_token_id=self.tokenizer.pad_token_id, **options)
            cut = time.monotonic() - started >= self.max_seconds
        new = out[0, ids.shape[1] :].tolist()  # (new tokens,)
        texts = _token_texts(self.tokenizer, new)
        kept = _stop_at(texts, body.get("stop"))
        stopped = kept != texts or (len(new) < max_tokens and not cut)
        return kept, ids.shape[1], "stop" if stopped else "length"

    def _version_generate(
        self, model: str, ids: torch.Tensor, options: dict[str, Any], session: str | None
    ) -> torch.Tensor:
        """Generate with a separately loaded version; with a session, from and into its memory."""
        version = self.versions[model]
        pad = self.tokenizer.pad_token_id
        if not isinstance(version, StatefulVersion):
            return version.generate(input_ids=ids, pad_token_id=pad, **options)  # type: ignore[no-any-return]
        key, sessions = (model, session or ""), self.sessions[tenant_of(model)]
        version.start_memory(sessions.get(key) if session else None)
        try:
            out: torch.Tensor = version.generate(input_ids=ids, pad_token_id=pad, **options)
        finally:
            version.start_memory(None)
        if session:
            sessions[key] = version.memory_state()
            sessions.move_to_end(key)
            while len(sessions) > MAX_SESSIONS:
                sessions.popitem(last=False)
        return out

    def _base_generate(self, ids: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
        pad = self.tokenizer.pad_token_id
        if isinstance(self.model, PeftModel):
            with self.model.disable_adapter():
                return self.model.generate(input_ids=ids, pad_token_id=pad, **options)  # type: ignore[no-any-return]
        return self.model.generate(input_ids=ids, pad_token_id=pad, **options)  # type: ignore[no-any-return]


def create_app(native: NativeModel, api_key: str | None = None) -> FastAPI:
    """vLLM's routes over one `NativeModel`; with `api_key`, its `/v1` routes demand it as vLLM's do."""
    app = FastAPI()
    if api_key is not None:
        expected = f"Bearer {api_key}".encode()

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Response:
            given = request.headers.get("authorization", "").encode()
            if request.url.path.startswith("/v1") and not hmac.compare_digest(given, expected):
                return JSONResponse({"error": "Unauthorized"}, 401)
            response: Response = await call_next(request)
            return response

    @app.get("/health")
    def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [{"id": native.base, "object": "model", "root": native.base, "parent": None}]
        for name, path in native.adapters.items():
            data.append({"id": name, "object": "model", "root": path, "parent": native.base})
        return {"object": "list", "data": data}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request) -> Response:
        body = await request.json()
        name, path = body["lora_name"], body["lora_path"]
        if name in native.adapters:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        if not (Path(path) / "adapter_config.json").exists() and not has_own_loader(Path(path).parent):
            return _error(404, f"No adapter found for {path}")
        await asyncio.to_thread(native.load, name, path)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload(request: Request) -> Response:
        name = (await request.json())["lora_name"]
        if name not in native.adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.")
        await asyncio.to_thread(native.unload, name)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        return await _answer(native, body, str(body.get("prompt", "")), chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await request.json()
        prompt = native.tokenizer.apply_chat_template(
            body["messages"], tokenize=False, add_generation_prompt=True
        )
        return await _answer(native, body, str(prompt), chat=True)

    return app


async def _answer(native: NativeModel, body: dict[str, Any], prompt: str, chat: bool) -> Response:
    model = body.get("model")
    if model != native.base and model not in native.adapters:
        return _error(404, f"The model `{model}` does not exist.", param="model")
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return _error(400, f"{field} must be an integer.", param=field)
        if value is not None and not 0 <= value <= native.max_tokens:
            return _error(400, f"{field} must be from 0 to {native.max_tokens} on this backend.", param=field)
    session = body.get("session_id")
    if session is not None and not isinstance(session, str):
        return _error(400, "session_id must be a string.", param="session_id")
    if session is not None and not native.keeps_sessions(str(model)):
        message = f"The model `{model}` keeps no memory across requests: no session_id (titans only)."
        return _error(400, message, param="session_id")
    texts, prompt_tokens, finish_reason = await asyncio.to_thread(native.generate, str(model), prompt, body)
    ident, created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())
    kind = "chat.completion" if chat else "text_completion"
    if body.get("stream"):
        return StreamingResponse(
            _chunks(ident, created, str(model), texts, chat), media_type="text/event-stream"
        )
    text = "".join(texts)
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason}
    choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(texts)}
    usage["total_tokens"] = prompt_tokens + len(texts)
    return JSONResponse(
        {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice], "usage": usage}
    )


async def _chunks(ident: str, created: int, model: str, texts: list[str], chat: bool) -> AsyncIterator[bytes]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    for text in texts:
        choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
        chunk = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text each token adds, in linear time (decoding the whole answer at every token is
    quadratic): each step decodes a window from the token before the last emitted text, so
    tokens that merge with their neighbours (a leading space, a multi-byte character) come out
    as they do in the whole answer."""
    texts, start, emitted = [], 0, 0  # the window starts at `start`; `emitted` tokens are out
    for end in range(1, len(ids) + 1):
        before = str(tokenizer.decode(ids[start:emitted], skip_special_tokens=True))
        after = str(tokenizer.decode(ids[start:end], skip_special_tokens=True))
        if after.endswith("\ufffd"):  # a character whose bytes are not all there yet
            texts.append("")
            continue
        texts.append(after[len(before) :])
        start, emitted = emitted, end
    if emitted < len(ids):  # the answer ends inside a character: it ends with "\ufffd", as decoded whole
        before = str(tokenizer.decode(ids[start:emitted], skip_special_tokens=True))
        texts[-1] = str(tokenizer.decode(ids[start:], skip_special_tokens=True))[len(before) :]
    return texts


def _stop_at(texts: list[str], stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    joined = "".join(texts)
    cut = min((joined.find(item) for item in stops if item in joined), default=-1)
    if cut < 0:
        return texts
    kept, length = [], 0
    for text in texts:
        if length + len(text) > cut:
            kept.append(text[: cut - length])
            break
        kept.append(text)
        length += len(text)
    return [text for text in kept if text]


def has_own_loader(version_dir: Path) -> bool:
    """Whether the version in `version_dir` is loaded by its method's loader, not as a PEFT adapter."""
    manifest = version_dir / "manifest.json"
    return manifest.exists() and version_loader(version_method(version_dir)) is not None


def tenant_of(name: str) -> str:
    """The tenant of a version loaded under `<tenant>/<lineage>@<N>` (service/serving/tier.py)."""
    return name.partition("/")[0]


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "NotFoundError" if status == 404 else "BadRequestError"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


def main() -> None:
    parser = argparse.ArgumentParser(description="Neuroplast's native (transformers + peft) backend.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="largest max_tokens of a request")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="longest generation")
    args = parser.parse_args()
    native = NativeModel(args.model, args.max_tokens, args.max_seconds)
    app = create_app(native, os.environ.get("VLLM_API_KEY") or None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
