"""Logs as text or as one JSON object per line, carrying the ids of the work being done.

A worker wraps each lease in `log_context(job_id=…, tenant=…, lineage=…, version=…)` and the API
wraps each request in `log_context(request_id=…)`, to which authentication `bind`s the tenant;
every record logged inside carries those fields, so one `grep`/`jq` over all processes' logs
follows a job or a request (docs/operations.md, Monitoring).
"""

import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

# A dict per context: `bind` mutates it in place, so fields bound by a dependency that runs in the
# thread pool (a copied context, the same dict) are seen by the rest of the request.
_fields: ContextVar[dict[str, Any] | None] = ContextVar("neuroplast_log_fields", default=None)
# These log a line per HTTP call at INFO (the reconciler polls replicas every second).
QUIET_LOGGERS = ("httpx", "httpcore")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def configure_logging(log_format: Literal["text", "json"], level: str = "INFO") -> None:
    """Send every log record to stderr in `log_format`, with the context's fields."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_attach_fields)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside carry `fields` (None values left out) besides those of outer contexts."""
    token = _fields.set({**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Any) -> None:
    """Add `fields` to the innermost `log_context` (a no-op outside one)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


class JsonFormatter(logging.Formatter):
    """`{"timestamp", "level", "logger", "message", <context fields>, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message [key=value …]` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context: dict[str, Any] = getattr(record, "context", {})
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the fields
        fields = " ".join(f"{key}={value}" for key, value in context.items())
        return f"{first} [{fields}]{newline}{rest}"


class RequestLogContext:
    """ASGI middleware: each HTTP request logs under its `request_id` (the client's `x-request-id`
    when it is a short plain token, else a new one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # On the gateway's hot path: no header dict, no context manager.
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = given.decode("latin-1")
        if not REQUEST_ID.fullmatch(request_id):
            request_id = secrets.token_hex(8)
        token = _fields.set({"request_id": request_id})
        try:
            await self.app(scope, receive, send)
        finally:
            _fields.reset(token)


def _attach_fields(record: logging.LogRecord) -> bool:
    # A filter runs in the logging call's own thread and context, where the fields are set.
    record.context = dict(_fields.get() or {})
    return True
