"""Steering a crash-safety scenario: provider faults, crash points, and checks on its recipients."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from service.devtools.sandbox.server import SandboxServer
from service.storage.models import MessageStatus
from tests.support.faults.outcomes import Row, by_id

QUIET_SECONDS = 2.0


def set_faults(sandbox: SandboxServer, *rules: dict[str, Any]) -> None:
    """Replace the sandbox's fault rules (none: it behaves again)."""
    httpx.delete(f"{sandbox.url}/sandbox/faults", timeout=10).raise_for_status()
    if rules:
        httpx.post(f"{sandbox.url}/sandbox/faults", json=list(rules), timeout=10).raise_for_status()


def assert_each_texted_once(sandbox: SandboxServer, phones: list[str]) -> None:
    copies = Counter(message["to"] for message in sandbox.messages("twilio"))
    wrong = {phone: copies[phone] for phone in phones if copies[phone] != 1}
    assert not wrong, f"{len(wrong)} of {len(phones)} recipients not texted exactly once"


def assert_sent(rows: list[Row], ids: list[int]) -> None:
    found = by_id(rows)
    not_sent = [found[i].brief() for i in ids if found[i].status != MessageStatus.SENT]
    assert not not_sent, f"not sent: {not_sent}"
