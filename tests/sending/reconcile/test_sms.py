"""Reconciling `unknown` SMS against Twilio: found, refused, lookups that fail, dead workers."""

from __future__ import annotations

import socket
from datetime import timedelta

from sqlalchemy import select, update

from service.devtools.sandbox.server import SandboxServer
from service.messages.compose import Recipient, compose, renders_discreet
from service.providers.twilio.sms import TwilioSmsProvider
from service.storage.models import Channel, Message, Subscriber
from tests.sending.reconcile.rows import (
    LATER,
    PHONE,
    SETTLE,
    accepted,
    claim,
    lease_runs_out,
    only,
    reconcile,
    row,
    strand,
    subscribe,
    twilio_provider,
)
from tests.support.world import Harness


def dead_url() -> str:
    """A loopback port nobody listens on: the provider is down."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


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
