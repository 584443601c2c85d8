"""A stand-in for vLLM with the same adapter routes and bodies, for the fast gateway tests.

Its completions spell out the adapter name, one word per streamed chunk, so a test sees which
version produced every piece of a response. Like vLLM with `--api-key`, given `api_key` it answers
its `/v1` routes only to requests that carry it; adapter names in `app.state.refused` fail to
load, as an adapter that does not fit would.
"""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from service.local import free_port

BASE = "fake-base"


def fake_vllm(words: int = 8, delay: float = 0.002, api_key: str | None = None) -> FastAPI:
    """The app; `adapters` in its state is what it holds."""
    app = FastAPI()
    adapters: dict[str, str] = {}
    app.state.adapters = adapters
    refused: set[str] = set()
    app.state.refused = refused
    streams = {"open": 0, "abandoned": 0}  # streams being sent; streams whose reader went away
    app.state.streams = streams

    if api_key is not None:

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Response:
            given = request.headers.get("authorization")
            if request.url.path.startswith("/v1") and given != f"Bearer {api_key}":
                return JSONResponse({"error": "Unauthorized"}, 401)
            response: Response = await call_next(request)
            return response

    @app.get("/health")
    def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        data = [{"id": BASE, "object": "model", "parent": None}]
        data += [
            {"id": name, "object": "model", "parent": BASE, "root": path} for name, path in adapters.items()
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request) -> Response:
        body = await request.json()
        if body["lora_name"] in adapters:
            return JSONResponse({"error": {"message": "has already been loaded"}}, 400)
        if body["lora_name"] in refused:
            return JSONResponse({"error": {"message": f"out of memory loading {body['lora_path']}"}}, 500)
        adapters[body["lora_name"]] = body["lora_path"]
        return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload(request: Request) -> Response:
        body = await request.json()
        if adapters.pop(body["lora_name"], None) is None:
            return JSONResponse({"error": {"message": "not found", "code": 404}}, 404)
        return PlainTextResponse("Success")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        model = body["model"]
        if model not in adapters and model != BASE:
            return JSONResponse({"error": {"message": f"The model `{model}` does not exist."}}, 404)
        if not body.get("stream"):
            text = " ".join([model] * words)
            return JSONResponse({"object": "text_completion", "model": model, "choices": [{"text": text}]})
        return StreamingResponse(_stream(model, words, delay, streams), media_type="text/event-stream")

    return app


async def _stream(model: str, words: int, delay: float, streams: dict[str, int]) -> AsyncIterator[bytes]:
    streams["open"] += 1
    finished = False
    try:
        for _ in range(words):
            await asyncio.sleep(delay)
            chunk = {"object": "text_completion", "model": model, "choices": [{"text": f" {model}"}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"
        finished = True
    finally:
        streams["open"] -= 1
        streams["abandoned"] += not finished


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve `app` on loopback in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
