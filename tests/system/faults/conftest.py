"""The servers a crash-safety scenario may break: the Twilio sandbox and a Redis of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import PrivateRedis, ServerUnavailable
from tests.support.faults.services import TWILIO_TOKEN, require_server


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """The Twilio stand-in; no status callbacks, so sent rows stay `sent`."""
    with SandboxServer(auth_token=TWILIO_TOKEN, callbacks=False) as server:
        yield server


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own: nothing shared is restarted or flushed, and no other
    test run's workers can take our tasks."""
    try:
        server = PrivateRedis(tmp_path / "redis")
    except ServerUnavailable as exc:
        require_server(f"{exc} (the fault tests start a Redis of their own)")
    try:
        server.start()
        yield server
    finally:
        server.stop()
