"""A request body limit for every route (pure ASGI, in front of the framework's body parsing).

Request bodies other than the body-camera upload (which streams to disk under its own
``api.max_upload_bytes``, see :mod:`pipeline.intake.bodycam`) may not exceed
``api.max_json_bytes``. The declared ``Content-Length`` is checked before any byte is read; a
body without one (chunked) is counted as it arrives and cut off at the limit. Either way the
answer is 413 in the one error shape, and the route never sees the body, so a client cannot make
the server buffer a huge JSON document (FastAPI reads a JSON body whole before validating it).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.api.errors import send_error

# Routes that read their body as a stream under a limit of their own.
STREAMED_PATHS = frozenset({"/api/v1/bodycam/clips"})


async def _refuse(send: Send, limit: int, declared: str | None) -> None:
    size = f"of {declared} bytes " if declared else ""
    message = f"request body {size}exceeds {limit} bytes (api.max_json_bytes)"
    await send_error(send, 413, "payload_too_large", message, {"limit": limit}, close=True)


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413 (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in STREAMED_PATHS:
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit():
                await _refuse(send, limit, declared)
                return
            # a Content-Length that is not a number: the server should have refused it already
            await _refuse(send, limit, None)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # an HTTPException: FastAPI turns any other error while reading a body into a
                    # 400, but lets this one through to the error handler (413, the error shape)
                    raise HTTPException(413, f"request body exceeds {limit} bytes (api.max_json_bytes)")
            return message

        await self.app(scope, counting, send)
