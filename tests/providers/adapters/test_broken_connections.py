"""A connection that breaks before the request (a plain retry) or after it (reconcile)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from service.providers.base import ProviderError
from tests.providers.adapters.builders import (
    closed_port,
    email,
    sendgrid_provider,
    sms,
    twilio_provider,
)

# --- a connection that breaks: before the request (retry) or after it (reconcile) ----------


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """A server that reads the whole request, then closes without answering: the request
    reached the provider, so it may have been accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop = True
    thread.join(timeout=2)
    listener.close()


def test_twilio_lost_connection_after_the_request_is_ambiguous(hangs_up: str) -> None:
    with pytest.raises(ProviderError) as caught:
        twilio_provider(hangs_up).send(sms())
    assert (caught.value.code, caught.value.permanent) == ("connection_lost", False)


def test_sendgrid_lost_connection_after_the_request_is_ambiguous(hangs_up: str) -> None:
    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(hangs_up).send(email())
    assert (caught.value.code, caught.value.permanent) == ("connection_lost", False)


def test_sendgrid_refused_connection_is_a_plain_retry() -> None:
    with pytest.raises(ProviderError) as caught:
        sendgrid_provider(closed_port()).send(email())
    assert (caught.value.code, caught.value.permanent) == ("connection", False)
