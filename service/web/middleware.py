"""A request id on every log line of a request, and on its response.

The proxy in front (or a client) may send `X-Request-ID`; a sane one is kept so
one id follows the request through the proxy's logs and ours. Anything else is
replaced by a fresh one: a header is untrusted input and lands in every log line.
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import mask_text

REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


def choose_request_id(incoming: str | None) -> str:
    """The client's id when it is short, plain and no phone number; else a new uuid4 hex."""
    if incoming and SANE_REQUEST_ID.fullmatch(incoming) and mask_text(incoming) == incoming:
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so streaming responses pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = choose_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        # Sync routes run in a thread pool that copies this context, so their
        # log lines carry the id too.
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)
