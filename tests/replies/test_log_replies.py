"""Replies to logged contacts and activities: what is carried, bursts, UNDO and DONE."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from service.messages.content import Content
from service.storage.models import ActivityLog, ContactLog, Message, Subscriber
from tests.replies.conversation import (
    NOON_NEW_YORK,
    replies,
    rows,
    say,
    scheduled_nudges,
    subscribed,
    subscriber,
    welcomed,
)

CALM = "Got it, all logged. Take a breath; nothing needs an answer right now."


def carried_text(template: str) -> str:
    """A restraint or tip as the reply carries it: without its own opening."""
    text = Content().sms(template, {**_context(), "discreet": False, "carried": True})
    rest = text.removeprefix("Steady: ")
    return rest[:1].upper() + rest[1:]


def _context() -> dict[str, Any]:
    return {
        "program": "Steady",
        "discreet": False,
        "support_contact": None,
        "safety_lines": [],
        "frequency": "up to 1 msg/day",
    }


# --- logging contacts -------------------------------------------------------------------


def test_me_reply_confirms_the_log_and_carries_a_restraint_logged_as_restraint(
    database_url: str,
) -> None:
    harness = subscribed(database_url)
    body = say(harness, "I texted him")

    assert body is not None
    assert body.startswith("Steady: Logged, you reached out by text.")
    [contact] = rows(harness, ContactLog)
    assert (contact.initiator, contact.medium) == ("me", "text")
    reply = replies(harness)[-1]
    assert (reply.kind, reply.rule, reply.status, reply.priority) == (
        "restraint",
        "me_reply_restraint",
        "sent",
        0,
    )
    assert reply.template.startswith("restraint_")
    assert reply.body == body
    assert body.endswith(carried_text(reply.template))


def test_them_reply_confirms_the_log_and_carries_a_tip_logged_as_tip(database_url: str) -> None:
    harness = subscribed(database_url)
    body = say(harness, "she called me last night")

    assert body is not None
    assert body.startswith("Steady: Logged, they reached out by phone.")
    [contact] = rows(harness, ContactLog)
    assert (contact.initiator, contact.medium) == ("them", "call")
    reply = replies(harness)[-1]
    assert (reply.kind, reply.rule) == ("tip", "them_reply_tip")
    assert reply.template.startswith("tip_")
    assert body.endswith(carried_text(reply.template))


def test_consecutive_me_logs_carry_different_restraints(database_url: str) -> None:
    harness = subscribed(database_url)
    say(harness, "ME")
    harness.now += timedelta(hours=2)
    say(harness, "ME")
    first, second = [m.template for m in replies(harness) if m.kind == "restraint"]
    assert first != second


def test_me_log_cancels_the_queued_nudge_and_the_next_one_is_restraint_first(
    database_url: str,
) -> None:
    harness = welcomed(database_url)
    [queued] = scheduled_nudges(harness)
    say(harness, "ME CALL")

    statuses = {m.id: m.status for m in rows(harness, Message)}
    assert statuses[queued.id] == "cancelled"
    harness.tick(NOON_NEW_YORK + timedelta(minutes=5))
    [next_nudge] = scheduled_nudges(harness)
    assert (next_nudge.kind, next_nudge.rule) == ("restraint", "restraint_after_me")


def test_any_reply_from_an_active_subscriber_counts_as_engagement(database_url: str) -> None:
    harness = subscribed(database_url)
    harness.now = NOON_NEW_YORK + timedelta(hours=3)
    say(harness, "thanks")
    assert subscriber(harness).last_engaged_at == NOON_NEW_YORK + timedelta(hours=3)


# --- bursts ---------------------------------------------------------------------------


def test_burst_of_three_logs_in_an_hour_gets_one_full_reply_one_calm_reply_then_silence(
    database_url: str,
) -> None:
    harness = subscribed(database_url)
    start = harness.now
    first = say(harness, "ME")
    harness.now = start + timedelta(minutes=10)
    second = say(harness, "he texted me")
    harness.now = start + timedelta(minutes=20)
    third = say(harness, "I called him")

    assert first is not None
    assert "you reached out" in first
    assert second == f"Steady: {CALM}"
    assert third is None
    assert [c.initiator for c in rows(harness, ContactLog)] == ["me", "them", "me"]
    assert [m.rule for m in replies(harness)][-2:] == ["me_reply_restraint", "burst_calm"]

    harness.now = start + timedelta(minutes=75)  # the calm reply was 65 minutes ago
    fourth = say(harness, "ME")
    assert fourth is not None
    assert "you reached out" in fourth


def test_discreet_burst_reply_is_the_calm_sentence(database_url: str) -> None:
    harness = subscribed(database_url)
    with harness.runtime.sessions() as session:
        session.scalars(select(Subscriber)).one().discreet = True
        session.commit()
    say(harness, "DONE gym")
    assert say(harness, "THEM") == CALM


# --- UNDO and DONE --------------------------------------------------------------------


def test_done_logs_the_activity_with_its_area_and_sets_last_done_at(database_url: str) -> None:
    harness = subscribed(database_url)
    body = say(harness, "done - went to yoga class")

    assert body is not None
    assert "went to yoga class" in body
    [activity] = rows(harness, ActivityLog)
    assert (activity.area, activity.note) == ("fitness", "went to yoga class")
    assert subscriber(harness).last_done_at == harness.now
    assert replies(harness)[-1].rule == "done_logged"


def test_undo_removes_the_last_log_entry_contact_or_activity(database_url: str) -> None:
    harness = subscribed(database_url)
    say(harness, "ME")
    harness.now += timedelta(minutes=1)
    say(harness, "DONE gym")
    harness.now += timedelta(minutes=1)

    assert "removed (an activity)" in (say(harness, "UNDO") or "")
    assert rows(harness, ActivityLog) == []
    assert subscriber(harness).last_done_at is None
    assert len(rows(harness, ContactLog)) == 1

    assert "removed (you got in touch)" in (say(harness, "undo") or "")
    assert rows(harness, ContactLog) == []

    assert "nothing to undo" in (say(harness, "UNDO") or "")
