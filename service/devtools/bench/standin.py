"""A lean Twilio Messages stand-in for `steady bench`: the wire format, nothing else.

`steady sandbox` does everything a developer needs (faults, signed callbacks,
inbound texts, a JSON control API) and costs about 0.7 ms of CPU per message:
on a 2-core machine it would bound the very dispatch rate the bench measures.
This server answers `POST /2010-04-01/Accounts/{Sid}/Messages.json` as Twilio
does (201 and the message resource as JSON, keep-alive) for about 50 µs, so the
real `twilio` SDK in the workers is driven unchanged, and it counts what it
accepted per recipient so the bench can check that nothing went out twice. It
runs in its own process (`python -m service.devtools.bench.standin PORT`), and reports
its counts on `GET /counts`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

import httptools

_HEADERS = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class _State:
    def __init__(self) -> None:
        self.sequence = 0
        self.per_recipient: Counter[str] = Counter()
        self.first_at: float | None = None
        self.last_at: float | None = None

    def accept(self, account: str, form: dict[str, str]) -> bytes:
        self.sequence += 1
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        to = form.get("To", "")
        self.per_recipient[to] += 1
        sid = f"SM{os.getpid():08x}{self.sequence:024x}"
        stamp = formatdate(now, usegmt=True)
        return json.dumps(
            {
                "sid": sid,
                "account_sid": account,
                "to": to,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body", ""),
                "status": "queued",
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": stamp,
                "date_updated": stamp,
                "date_sent": None,
                "price": None,
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
                "subresource_uris": {},
            }
        ).encode()

    def counts(self) -> bytes:
        return json.dumps(
            {
                "accepted": sum(self.per_recipient.values()),
                "recipients": len(self.per_recipient),
                "duplicates": sum(1 for n in self.per_recipient.values() if n > 1),
                "first_at": self.first_at,
                "last_at": self.last_at,
            }
        ).encode()

    def reset(self) -> None:
        """Forget the counts; SIDs keep counting up, so they stay unique (as Twilio's are)."""
        self.per_recipient.clear()
        self.first_at = self.last_at = None


class _Protocol(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._respond(400, b"Bad Request", b'{"message": "malformed request"}')
            if self.transport is not None:
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0].decode()
        body = b"".join(self.body)
        self.url, self.body = b"", []
        parts = path.strip("/").split("/")
        if method == b"POST" and len(parts) == 4 and parts[3] == "Messages.json":
            form = dict(parse_qsl(body.decode()))
            if not form.get("To") or not form.get("Body"):
                self._respond(400, b"Bad Request", b'{"code": 21604, "status": 400}')
                return
            self._respond(201, b"Created", self.state.accept(parts[2], form))
        elif method == b"GET" and path == "/counts":
            self._respond(200, b"OK", self.state.counts())
        elif method == b"DELETE" and path == "/counts":
            self.state.reset()
            self._respond(200, b"OK", self.state.counts())
        else:
            self._respond(404, b"Not Found", b'{"code": 20404, "status": 404}')

    def _respond(self, status: int, reason: bytes, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_HEADERS % (status, reason, len(payload)) + payload)


async def _serve(port: int) -> None:
    state = _State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(state), "127.0.0.1", port, backlog=1024)
    print(f"standin listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> Any:
    args = argv if argv is not None else sys.argv[1:]
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvicorn[standard] ships it
        pass
    asyncio.run(_serve(int(args[0])))


if __name__ == "__main__":
    main()
