"""Reconciling `unknown` email against SendGrid's Email Activity API."""

from __future__ import annotations

from datetime import timedelta

from service.devtools.sandbox.server import SandboxServer
from tests.sending.reconcile.rows import LATER, accepted, only, row, subscribe
from tests.support.world import Harness

EMAIL = "sam@example.org"


# --- SendGrid -------------------------------------------------------------------------------


def test_email_that_timed_out_but_was_accepted_is_found_by_our_id_in_custom_args(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, email=EMAIL)
    sandbox.add_fault(api="sendgrid", timeout=True, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    assert (confirm.channel, confirm.status) == ("email", "unknown")
    [copy] = accepted(sandbox, 1)

    report = harness.tick(harness.now + LATER).reconcile
    harness.tick(harness.now + timedelta(hours=1))

    settled = row(harness, confirm.id)
    assert report.settled == {confirm.id: "sent"}
    assert (settled.provider_id, settled.provider) == (copy["id"], "sendgrid")
    assert len(sandbox.messages()) == 1


def test_email_that_sendgrid_never_took_is_sent_again_exactly_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, email=EMAIL)
    sandbox.add_fault(api="sendgrid", timeout=True, http_status=503, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    assert confirm.status == "unknown"

    report = harness.tick(harness.now + LATER).reconcile
    harness.tick(harness.now + timedelta(hours=1))

    assert report.settled == {confirm.id: "resent"}
    [copy] = sandbox.messages()
    assert copy["params"]["custom_args"] == {"steady_message_id": str(confirm.id)}
    assert (row(harness, confirm.id).status, row(harness, confirm.id).attempts) == ("sent", 2)
