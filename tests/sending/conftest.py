"""Fixtures shared by the sending tests: the Twilio sandbox at the network edge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.devtools.sandbox.server import SandboxServer
from tests.support.world import PUBLIC_URL


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(public_url=PUBLIC_URL, callbacks=False) as server:
        yield server
