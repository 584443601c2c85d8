"""The one error envelope: `{"error": {"message", "type", "param", "code"}}` with a proper status."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """A client-visible error; raised by services, rendered by the handler below."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers  # e.g. `retry-after` on a 429


class BodyTooLarge(HTTPException):
    """A request body over its limit, found while it was being read (`service.limits.BodyLimit`)."""


def not_found(kind: str, ident: str, param: str | None = None) -> ApiError:
    """The 404 every resource lookup raises, naming what was missing."""
    return ApiError(404, f"No {kind} found with id or name '{ident}'.", param=param, code="not_found")


def error_body(status: int, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    """The JSON body of an error response."""
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, including framework ones, in the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.status, exc.message, exc.param, exc.code)
        return JSONResponse(body, exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        body = error_body(exc.status_code, str(exc.detail), None, None)
        return JSONResponse(body, exc.status_code, headers=exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body(413, str(exc.detail), None, "request_too_large"), 413)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The envelope, never a stack trace: details go to the log only.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "The server had an error.", None, "server_error"), 500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
        messages = "; ".join(_describe(error) for error in exc.errors())
        return JSONResponse(error_body(400, messages, param or None, "invalid_value"), 400)


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"] if part not in ("body", "query", "path"))
    return f"{loc}: {error['msg']}" if loc else str(error["msg"])
