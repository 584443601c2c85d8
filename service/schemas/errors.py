"""The error envelope every failure answers with, as documented in the OpenAPI schema."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, naming the field or line at fault.")
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error, ...")
    param: str | None = Field(description="The request field at fault, e.g. `file` or `model`.")
    code: str | None = Field(description="A stable machine-readable code, e.g. `invalid_file`.")


class ErrorEnvelope(BaseModel):
    """`{"error": {"message", "type", "param", "code"}}`, OpenAI's shape."""

    error: ErrorDetail


_CLIENT_ERROR = (
    "A client error (400 invalid, 401 no or bad key, 403 scope, 404 not found or another tenant's, "
    "409 conflict, 413 too large, 429 quota, with `retry-after`)."
)
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorEnvelope, "description": _CLIENT_ERROR}
}
# Routes whose success is not JSON (an HTML page) still answer errors with the JSON envelope; a
# `model` here would be documented under the route's own media type.
CLIENT_ERRORS_OF_HTML: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": _CLIENT_ERROR,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorEnvelope, "description": "Serving is disabled or not ready yet."}
}
