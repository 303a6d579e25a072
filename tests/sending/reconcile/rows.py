"""Rows made `unknown` as production makes them, and the reconciler run over them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from service.devtools.sandbox.server import SandboxServer
from service.providers.twilio.sms import TwilioSmsProvider
from service.sending.claims import claim_due
from service.sending.reconcile import ReconcileReport, reconcile_unknown
from service.storage.models import Message
from tests.support.world import TEST_TWILIO_TOKEN, Harness

PHONE = "+12125550143"


SETTLE = timedelta(seconds=60)  # the default settle delay, which `Runtime.tick` uses
LATER = SETTLE + timedelta(seconds=1)


def twilio_provider(api_url: str) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        account_sid="AC" + "2" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number="+15005550006",
        api_url=api_url,
        timeout_seconds=0.5,
    )


def subscribe(harness: Harness, **fields: str) -> None:
    response = harness.client.post("/subscribe", json={**fields, "consent": True})
    assert response.status_code == 202


def row(harness: Harness, message_id: int) -> Message:
    with harness.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def only(harness: Harness, kind: str) -> Message:
    with harness.runtime.sessions() as session:
        [message] = session.scalars(select(Message).where(Message.kind == kind)).all()
        return message


def accepted(sandbox: SandboxServer, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The sandbox's messages once it holds `count` (a held request is recorded late)."""
    deadline = time.monotonic() + timeout
    while len(messages := sandbox.messages()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return messages


def claim(harness: Harness, message_id: int) -> None:
    """A worker claims the row and commits `sending` (and then dies)."""
    lease = timedelta(seconds=harness.settings.send_lease_seconds)
    with harness.runtime.sessions() as session:
        assert claim_due(session, harness.now, 10, lease, ids=[message_id]) == [message_id]
        session.commit()


def lease_runs_out(harness: Harness, message_id: int) -> None:
    harness.now += timedelta(seconds=harness.settings.send_lease_seconds + 1)
    harness.runtime.dispatcher.housekeeping(harness.now)
    assert row(harness, message_id).status == "unknown"


def strand(harness: Harness, message_id: int) -> None:
    """A worker claims the row and dies before sending; the lease runs out."""
    claim(harness, message_id)
    lease_runs_out(harness, message_id)


def reconcile(harness: Harness, **options: Any) -> ReconcileReport:
    options.setdefault("settle_after", SETTLE)
    rt = harness.runtime
    return reconcile_unknown(
        rt.sessions, rt.providers, rt.settings, rt.content, harness.now, **options
    )
