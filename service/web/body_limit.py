"""Request bodies are bounded by the app itself, not only by the proxy in front.

The same limits as `deploy/nginx/steady.conf`: 64 KiB for every form, JSON body and
Twilio webhook; 5 MiB for SendGrid's event batches. A declared `Content-Length` past
the limit is refused before a byte is read; a chunked body is counted as it arrives
and refused as soon as it passes the limit. Either way the answer is a 413, and a
route never holds more than the limit in memory (a webhook reads its body before it
can check the signature, so without this anyone could make it buffer megabytes).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 64 * 1024
LIMITS_BY_PATH = {"/webhooks/sendgrid/events": 5 * 1024 * 1024}
TOO_LARGE = "request body too large"


class _TooLarge(HTTPException):
    """Raised from `receive`: a route's body parser passes an HTTPException on as it is,
    so the answer is this 413 wherever the body was being read."""

    def __init__(self) -> None:
        super().__init__(413, TOO_LARGE)


def limit_for(path: str) -> int:
    return LIMITS_BY_PATH.get(path.rstrip("/") or "/", DEFAULT_LIMIT)


class BodyLimit:
    """Pure ASGI, so it sees the body before any route or form parser does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(str(scope["path"]))
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await PlainTextResponse(TOO_LARGE, status_code=413)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await PlainTextResponse(TOO_LARGE, status_code=413)(scope, receive, send)
