"""A tiny webhook receiver that records what the sandbox posts, for tests and benchmarks.

It stands where Steady's web process would: it keeps every request (path with query,
headers, raw body) and answers 200, or the TwiML it was given for inbound texts. It
checks nothing itself, so a test can verify signatures with the providers' own
libraries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl

INBOUND_PATH = "/webhooks/twilio/inbound"
DEFAULT_TWIML = "<?xml version='1.0' encoding='UTF-8'?><Response/>"


@dataclass(frozen=True)
class ReceivedRequest:
    path: str  # with the query string, as requested
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


class WebhookReceiver:
    """`with WebhookReceiver() as receiver:` … `receiver.wait_for(lambda r: …)`."""

    def __init__(self, *, twiml: str = DEFAULT_TWIML, status: int = 200) -> None:
        self.twiml = twiml
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = ReceivedRequest(self.path, dict(self.headers), self.rfile.read(length))
                with receiver._arrived:
                    receiver.requests.append(received)
                    receiver._arrived.notify_all()
                inbound = self.path.split("?", 1)[0] == INBOUND_PATH
                payload = receiver.twiml.encode("utf-8") if inbound else b""
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/xml" if inbound else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test output is for the tests."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def wait_for(
        self, matches: Callable[[ReceivedRequest], bool], count: int = 1, timeout: float = 5.0
    ) -> list[ReceivedRequest]:
        """The first `count` requests that match, waiting for them up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r for r in self.requests if matches(r)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found[:count] if len(found) >= count else found
                self._arrived.wait(remaining)
