"""Reconciling `unknown` nudges: expiry, holding the next one back, superseded nudges."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from service.devtools.sandbox.server import SandboxServer
from service.messages.lifecycle import PRIORITY_NUDGE
from service.sending.planner import plan_due
from service.storage.models import Message, Subscriber
from tests.sending.reconcile.rows import LATER, PHONE, reconcile, row, strand, subscribe
from tests.support.world import Harness


def confirmed_with_a_nudge(harness: Harness) -> Message:
    """An active SMS subscriber whose first nudge is planned (and not yet sent)."""
    subscribe(harness, phone=PHONE)
    harness.tick()  # the confirmation goes out
    assert harness.text_in(PHONE, "YES").status_code == 200
    harness.runtime.plan(harness.now)
    with harness.runtime.sessions() as session:
        [nudge] = session.scalars(select(Message).where(Message.priority == PRIORITY_NUDGE)).all()
    return nudge


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
