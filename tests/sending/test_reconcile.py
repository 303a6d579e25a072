"""Reconciliation of `unknown` messages against the provider, through the real SDKs.

Rows become `unknown` the two ways they do in production: a provider call that
times out (the sandbox's `timeout` fault, which still accepts the message unless
told to fail it), or a worker that claimed a batch and died (`claim_due`
committed, then its lease runs out). The sandbox stands in for Twilio and
SendGrid at the network edge; nothing of ours is mocked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from service.devtools.sandbox.server import SandboxServer
from service.messages.compose import Recipient, compose, renders_discreet
from service.messages.lifecycle import PRIORITY_NUDGE
from service.providers.sendgrid.email import SendGridEmailProvider
from service.providers.twilio.sms import TwilioSmsProvider
from service.sending.claims import claim_due
from service.sending.planner import plan_due
from service.sending.reconcile import ReconcileReport, claim_unknown, reconcile_unknown
from service.storage.models import Channel, Message, Subscriber
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings

PHONE = "+12125550143"
EMAIL = "sam@example.org"
SETTLE = timedelta(seconds=60)  # the default settle delay, which `Runtime.tick` uses
LATER = SETTLE + timedelta(seconds=1)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(public_url=PUBLIC_URL, callbacks=False) as server:
        yield server


def twilio_provider(api_url: str) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        account_sid="AC" + "2" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number="+15005550006",
        api_url=api_url,
        timeout_seconds=0.5,
    )


def dead_url() -> str:
    """A loopback port nobody listens on: the provider is down."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


@pytest.fixture
def harness(database_url: str, sandbox: SandboxServer) -> Harness:
    sandbox.reset()
    harness = Harness(make_settings(database_url))
    harness.runtime.providers["sms"] = twilio_provider(sandbox.url)
    harness.runtime.providers["email"] = SendGridEmailProvider(
        api_key="SG.test-key",
        from_email="nudges@steady.example",
        api_url=sandbox.url,
        timeout_seconds=0.5,
    )
    return harness


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


def send_as_the_dead_worker_did(harness: Harness, message_id: int) -> str:
    """What a worker does between its claim and its crash: compose and send."""
    message = row(harness, message_id)
    with harness.runtime.sessions() as session:
        channel = session.get(Channel, message.channel_id)
        subscriber = session.get(Subscriber, message.subscriber_id)
        assert channel is not None
        assert subscriber is not None
        recipient = Recipient(
            message_id=message.id,
            channel_id=channel.id,
            channel=message.channel,  # type: ignore[arg-type]
            address=channel.address,
            discreet=renders_discreet(message.kind, subscriber.discreet, channel.consent_method),
            cadence_per_week=subscriber.cadence_per_week,
        )
    outbound = compose(harness.settings, harness.runtime.content, recipient, message.template)
    return harness.runtime.providers[recipient.channel].send(outbound)


def reconcile(harness: Harness, **options: Any) -> ReconcileReport:
    options.setdefault("settle_after", SETTLE)
    rt = harness.runtime
    return reconcile_unknown(
        rt.sessions, rt.providers, rt.settings, rt.content, harness.now, **options
    )


def confirmed_with_a_nudge(harness: Harness) -> Message:
    """An active SMS subscriber whose first nudge is planned (and not yet sent)."""
    subscribe(harness, phone=PHONE)
    harness.tick()  # the confirmation goes out
    assert harness.text_in(PHONE, "YES").status_code == 200
    harness.runtime.plan(harness.now)
    with harness.runtime.sessions() as session:
        [nudge] = session.scalars(select(Message).where(Message.priority == PRIORITY_NUDGE)).all()
    return nudge


# --- Twilio ---------------------------------------------------------------------------------


def test_sms_that_timed_out_but_was_accepted_settles_as_sent_and_is_never_resent(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    sandbox.add_fault(timeout=True, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    assert confirm.status == "unknown"
    [copy] = accepted(sandbox, 1)

    report = harness.tick(harness.now + LATER).reconcile

    settled = row(harness, confirm.id)
    assert report.settled == {confirm.id: settled.status}
    assert (settled.status, settled.provider_id, settled.provider) == (
        "sent",
        copy["id"],
        "twilio",
    )
    assert settled.sent_at is not None
    assert settled.lease_until is None
    harness.tick(harness.now + timedelta(hours=1))
    assert len(sandbox.messages()) == 1


def test_an_accepted_copy_that_failed_settles_failed_with_its_code_and_its_feedback(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    # Accepted after the client gave up, then failed: a landline (30006).
    sandbox.add_fault(
        timeout=True, sleep_seconds=2, callback_status="failed", error_code="30006", times=1
    )
    harness.tick()
    confirm = only(harness, "confirm")
    accepted(sandbox, 1)

    assert harness.tick(harness.now + LATER).reconcile.settled == {confirm.id: "failed"}

    settled = row(harness, confirm.id)
    assert (settled.status, settled.error_code) == ("failed", "30006")
    with harness.runtime.sessions() as session:
        channel = session.get(Channel, confirm.channel_id)
        assert channel is not None
        assert channel.status == "suppressed"  # as the failed callback would have done
    assert len(sandbox.messages()) == 1


def test_sms_that_timed_out_and_was_refused_is_sent_again_exactly_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    sandbox.add_fault(timeout=True, http_status=503, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    assert confirm.status == "unknown"

    assert harness.tick(harness.now + timedelta(seconds=30)).reconcile.claimed == 0  # settling
    report = harness.tick(harness.now + LATER).reconcile

    assert report.settled == {confirm.id: "resent"}
    [copy] = sandbox.messages()
    resent = row(harness, confirm.id)
    # Sent again in the same pass, as attempt 2.
    assert (resent.status, resent.provider_id, resent.attempts) == ("sent", copy["id"], 2)
    harness.tick(harness.now + timedelta(hours=1))
    assert len(sandbox.messages()) == 1


def test_lookup_failure_leaves_the_row_unknown_until_the_provider_answers(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    sandbox.add_fault(timeout=True, http_status=503, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    working = harness.runtime.providers["sms"]
    harness.runtime.providers["sms"] = twilio_provider(dead_url())

    harness.now += LATER
    report = reconcile(harness)

    assert report.left_unknown == {confirm.id: "lookup_failed"}
    assert row(harness, confirm.id).status == "unknown"
    harness.runtime.providers["sms"] = working
    harness.now += timedelta(seconds=10)
    assert reconcile(harness).claimed == 0  # not asked again at once
    harness.now += SETTLE
    assert reconcile(harness).settled == {confirm.id: "resent"}
    assert row(harness, confirm.id).status == "scheduled"
    assert sandbox.messages() == []


def test_a_provider_that_is_down_is_asked_once_per_pass_not_once_per_row(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    subscribe(harness, phone="+12125550144")
    with harness.runtime.sessions() as session:
        ids = sorted(session.scalars(select(Message.id).where(Message.kind == "confirm")))
    for message_id in ids:
        claim(harness, message_id)
    lease_runs_out(harness, ids[0])
    working = harness.runtime.providers["sms"]
    harness.runtime.providers["sms"] = twilio_provider(dead_url())

    harness.now += LATER
    report = reconcile(harness)

    assert sorted(report.left_unknown.values()) == ["deferred", "lookup_failed"]
    harness.runtime.providers["sms"] = working
    harness.now += LATER
    assert reconcile(harness).settled == dict.fromkeys(ids, "resent")


def test_a_different_unowned_text_to_the_same_number_keeps_the_row_unknown(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    sandbox.add_fault(timeout=True, http_status=503, sleep_seconds=2, times=1)
    harness.tick()
    confirm = only(harness, "confirm")
    # Something else reached this number meanwhile that no row of ours owns (say, an
    # operator's test text): it might be ours, altered, so nothing is resent.
    provider = harness.runtime.providers["sms"]
    assert isinstance(provider, TwilioSmsProvider)
    provider._messages.create(to=PHONE, from_="+15005550006", body="A test from the operator.")

    harness.now += LATER
    report = reconcile(harness)

    assert report.left_unknown == {confirm.id: "ambiguous"}
    assert row(harness, confirm.id).status == "unknown"
    assert len(sandbox.messages()) == 1


def test_a_confirmation_whose_worker_died_before_sending_is_resent_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    strand(harness, confirm.id)

    harness.tick(harness.now + timedelta(seconds=1))  # still settling: nothing sent
    assert sandbox.messages() == []
    harness.tick(harness.now + LATER)
    harness.tick(harness.now + timedelta(minutes=5))

    [copy] = sandbox.messages()
    settled = row(harness, confirm.id)
    assert (settled.status, settled.provider_id, settled.attempts) == ("sent", copy["id"], 2)


def test_a_confirmation_whose_worker_died_after_sending_is_found_not_resent(
    harness: Harness, sandbox: SandboxServer
) -> None:
    # The provider accepted it; the worker died before recording that.
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    claim(harness, confirm.id)
    sid = send_as_the_dead_worker_did(harness, confirm.id)
    lease_runs_out(harness, confirm.id)

    report = harness.tick(harness.now + LATER).reconcile
    harness.tick(harness.now + timedelta(hours=1))

    assert report.settled == {confirm.id: "sent"}
    assert row(harness, confirm.id).provider_id == sid
    assert len(sandbox.messages()) == 1


def test_an_identical_text_owned_by_another_row_is_not_taken_for_this_one(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    first = only(harness, "confirm")
    harness.tick()  # sent and recorded: its copy belongs to it
    with harness.runtime.sessions() as session:
        # The same confirmation again (same template, same person, same body).
        second = Message(
            subscriber_id=first.subscriber_id,
            channel_id=first.channel_id,
            channel="sms",
            kind="confirm",
            template="confirm",
            rule="signup",
            priority=0,
            scheduled_for=harness.now,
            created_at=harness.now,
            updated_at=harness.now,
        )
        session.add(second)
        session.commit()
        # Confirmations go to a pending channel only.
        session.execute(update(Channel).values(status="pending"))
        session.commit()
    strand(harness, second.id)

    harness.now += LATER
    assert reconcile(harness).settled == {second.id: "resent"}
    harness.tick()

    assert len(sandbox.messages()) == 2
    assert row(harness, second.id).provider_id == sandbox.messages()[-1]["id"]


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


# --- Nudges ---------------------------------------------------------------------------------


def stranded_nudge(harness: Harness) -> Message:
    nudge = confirmed_with_a_nudge(harness)
    harness.now = max(harness.now, nudge.scheduled_for)
    strand(harness, nudge.id)
    return row(harness, nudge.id)


def nudges(harness: Harness) -> list[Message]:
    with harness.runtime.sessions() as session:
        return list(
            session.scalars(
                select(Message).where(Message.priority == PRIORITY_NUDGE).order_by(Message.id)
            )
        )


def test_a_nudge_that_expired_while_unknown_is_expired_not_resent(
    harness: Harness, sandbox: SandboxServer
) -> None:
    nudge = stranded_nudge(harness)
    assert nudge.expires_at is not None
    harness.now = nudge.expires_at + timedelta(minutes=1)

    report = reconcile(harness)

    settled = row(harness, nudge.id)
    assert report.settled == {nudge.id: "expired"}
    assert (settled.status, settled.error_code) == ("expired", "not_accepted")
    with harness.runtime.sessions() as session:
        subscriber = session.get(Subscriber, nudge.subscriber_id)
        assert subscriber is not None
        assert subscriber.next_plan_at == harness.now
    assert len(sandbox.messages()) == 1  # the confirmation only


def test_an_unknown_nudge_holds_the_next_one_back_until_its_expiry(harness: Harness) -> None:
    nudge = stranded_nudge(harness)
    assert nudge.expires_at is not None
    policy = harness.runtime.policy

    # Dead leases replan at once; the planner must not add a second nudge.
    plan_due(harness.runtime.sessions, policy, harness.now)
    assert [n.id for n in nudges(harness)] == [nudge.id]

    # Past its expiry it can never be resent, so it no longer holds the person back.
    later = nudge.expires_at + timedelta(minutes=1)
    with harness.runtime.sessions() as session:
        session.execute(update(Subscriber).values(next_plan_at=later))
        session.commit()
    plan_due(harness.runtime.sessions, policy, later)
    assert len(nudges(harness)) == 2


def test_a_superseded_nudge_is_cancelled_not_resent(
    harness: Harness, sandbox: SandboxServer
) -> None:
    nudge = stranded_nudge(harness)
    with harness.runtime.sessions() as session:
        # A newer nudge for the same person, planned while this one was unknown (by
        # a planner of the previous release, which did not count `unknown`).
        newer = Message(
            subscriber_id=nudge.subscriber_id,
            channel_id=nudge.channel_id,
            channel="sms",
            kind="restraint",
            template="restraint_01",
            rule="test",
            priority=PRIORITY_NUDGE,
            scheduled_for=harness.now + timedelta(hours=3),
            expires_at=harness.now + timedelta(hours=5),
            created_at=harness.now,
            updated_at=harness.now,
        )
        session.add(newer)
        session.commit()
    sent_before = len(sandbox.messages())

    harness.tick(harness.now + LATER)

    cancelled = row(harness, nudge.id)
    assert (cancelled.status, cancelled.error_code) == ("cancelled", "superseded")
    assert row(harness, newer.id).status == "scheduled"  # still the one outstanding nudge
    assert len(sandbox.messages()) == sent_before


def test_an_unknown_nudge_the_provider_never_took_is_resent_once_then_the_next_is_planned(
    harness: Harness, sandbox: SandboxServer
) -> None:
    nudge = stranded_nudge(harness)
    sent_before = len(sandbox.messages())

    harness.tick(harness.now + LATER)

    assert (row(harness, nudge.id).status, row(harness, nudge.id).attempts) == ("sent", 2)
    assert len(sandbox.messages()) == sent_before + 1
    harness.tick()  # the planner's turn: the person's next nudge, and only one
    [first, after] = nudges(harness)
    assert (first.id, first.status, after.status) == (nudge.id, "sent", "scheduled")


# --- Two reconcilers ------------------------------------------------------------------------


def test_a_row_held_by_one_reconciler_is_not_taken_by_another(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    strand(harness, confirm.id)
    harness.now += LATER
    with harness.runtime.sessions() as session:
        # The first reconciler claims it, then stalls (or dies) before settling it.
        hold = harness.now + timedelta(minutes=5)
        assert claim_unknown(session, harness.now, 10, SETTLE, hold) == [confirm.id]
        session.commit()

    assert reconcile(harness).claimed == 0
    harness.now += timedelta(minutes=5, seconds=1)
    assert reconcile(harness).settled == {confirm.id: "resent"}


def test_two_reconcilers_racing_for_one_row_settle_it_once(
    harness: Harness, sandbox: SandboxServer
) -> None:
    subscribe(harness, phone=PHONE)
    confirm = only(harness, "confirm")
    strand(harness, confirm.id)
    harness.now += LATER
    start = threading.Barrier(2)
    reports: list[ReconcileReport] = []

    def reconciler() -> None:
        start.wait()
        reports.append(reconcile(harness))

    threads = [threading.Thread(target=reconciler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(report.claimed for report in reports) == [0, 1]
    assert [r.settled for r in reports if r.claimed] == [{confirm.id: "resent"}]
    harness.tick()
    harness.tick(harness.now + timedelta(minutes=5))
    assert len(sandbox.messages()) == 1
