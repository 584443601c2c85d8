"""Request body limits: a 413 before a byte is parsed when the declared length is too large, and as
soon as a streamed body passes the limit otherwise (no multipart part is spooled past it)."""

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTooLarge, error_body
from service.settings import Settings

UPLOAD_PATH = "/v1/files"
# Room for the multipart envelope around an uploaded file: boundaries, part headers, the purpose field.
MULTIPART_OVERHEAD = 64 * 1024


class BodyLimit:
    """ASGI middleware: file uploads may carry `max_upload_bytes`, every other body `max_request_bytes`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        message = f"The request body is over the limit of {limit} bytes."
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse(error_body(413, message, None, "request_too_large"), 413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > limit:
                raise BodyTooLarge(413, message)
            return event

        await self.app(scope, limited, send)

    def _limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH:
            return self.settings.max_upload_bytes + MULTIPART_OVERHEAD
        return self.settings.max_request_bytes
