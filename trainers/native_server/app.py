"""vLLM's routes over one `NativeModel`: the routes the serving tier and the gateway use."""

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from trainers.native_server.engine import NativeModel, has_own_loader
from trainers.native_server.openai import BadRequest, completion_body, parse, stream_chunks

__all__ = ["create_app"]


def create_app(native: NativeModel, api_key: str | None = None) -> FastAPI:
    """The app; with `api_key`, its `/v1` routes demand it as vLLM's do."""
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
        return await _answer(native, await request.json(), chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _answer(native, await request.json(), chat=True)

    return app


async def _answer(native: NativeModel, body: dict[str, Any], chat: bool) -> Response:
    model = body.get("model")
    if model != native.base and model not in native.adapters:
        return _error(404, f"The model `{model}` does not exist.", param="model")
    try:
        parsed = parse(body, native.tokenizer, native.max_tokens, chat)
    except BadRequest as error:
        return _error(400, str(error), param=error.param)
    if parsed.session is not None and not native.keeps_sessions(parsed.model):
        message = f"The model `{model}` keeps no memory across requests: no session_id (titans only)."
        return _error(400, message, param="session_id")
    if parsed.session is not None and (parsed.n > 1 or len(parsed.prompts) > 1):
        return _error(400, "A session continues one answer: n and the prompts must be 1.", param="session_id")
    future = native.submit(parsed.model, parsed.prompts, parsed.sampling, parsed.n, parsed.session)
    try:
        rows = await asyncio.wrap_future(future)
    except KeyError as error:  # the version was unloaded while the request waited
        return _error(404, str(error.args[0]), param="model")
    if parsed.stream:
        chunks = stream_chunks(parsed, rows, native.tokenizer)
        return StreamingResponse(_events(chunks), media_type="text/event-stream")
    return JSONResponse(completion_body(parsed, rows, native.tokenizer))


async def _events(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "NotFoundError" if status == 404 else "BadRequestError"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)
