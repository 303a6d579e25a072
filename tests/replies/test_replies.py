"""Replies to inbound texts, through the signed webhook: the TwiML and what it changed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from service.messages.content import Content
from service.pacing.explanations import RULES
from service.storage.models import (
    ActivityLog,
    Channel,
    ContactLog,
    InboundMessage,
    Message,
    Subscriber,
)
from tests.support.world import Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 12:00 in New York, a Monday
PHONE = "+12125550142"
STRANGER = "+12125550199"
SAFETY_LINE = "National Domestic Violence Hotline 1-800-799-7233"
CALM = "Got it, all logged. Take a breath; nothing needs an answer right now."


def subscribed(database_url: str, **overrides: Any) -> Harness:
    """A confirmed SMS subscriber, welcome not yet planned."""
    harness = Harness(make_settings(database_url, **overrides))
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick(NOON_NEW_YORK)
    harness.text_in(PHONE, "YES")
    return harness


def welcomed(database_url: str, **overrides: Any) -> Harness:
    """A subscriber whose welcome went out and whose next nudge is scheduled."""
    harness = subscribed(database_url, **overrides)
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))  # plans and sends the welcome
    harness.tick(NOON_NEW_YORK + timedelta(minutes=2))  # plans the next nudge
    return harness


def say(harness: Harness, body: str) -> str | None:
    """Text Steady as the subscriber; the TwiML reply's text, or None for an empty one."""
    response = harness.text_in(PHONE, body)
    assert response.status_code == 200
    return twiml_text(response.text)


def twiml_text(twiml: str) -> str | None:
    messages = ET.fromstring(twiml).findall("Message")  # noqa: S314 - our own TwiML, not untrusted
    assert len(messages) <= 1, "one reply at most"
    return messages[0].text if messages else None


def subscriber(harness: Harness) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.scalars(select(Subscriber)).one()
        session.expunge(found)
        return found


def rows(harness: Harness, model: Any) -> list[Any]:
    with harness.runtime.sessions() as session:
        found = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
        return found


def replies(harness: Harness) -> list[Message]:
    return [m for m in rows(harness, Message) if m.provider == "twiml"]


def scheduled_nudges(harness: Harness) -> list[Message]:
    return [m for m in rows(harness, Message) if m.status == "scheduled" and m.priority == 1]


def sms_sent_to_phone(harness: Harness) -> list[str]:
    return [m.body for m in harness.sms.sent if m.to == PHONE]


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


# --- PAUSE / RESUME -------------------------------------------------------------------


def test_pause_two_days_holds_nudges_for_48_hours_then_they_resume_by_themselves(
    database_url: str,
) -> None:
    harness = welcomed(database_url)
    paused_at = NOON_NEW_YORK + timedelta(minutes=10)
    harness.now = paused_at
    body = say(harness, "PAUSE 2")

    assert body is not None
    assert "Paused for 2 days" in body
    assert subscriber(harness).paused_until == paused_at + timedelta(hours=48)
    assert scheduled_nudges(harness) == []
    before = len(sms_sent_to_phone(harness))
    hour = paused_at
    while hour < paused_at + timedelta(hours=48):
        harness.tick(hour)
        hour += timedelta(hours=1)
    assert len(sms_sent_to_phone(harness)) == before, "nothing during the pause"

    while hour < paused_at + timedelta(hours=72):
        harness.tick(hour)
        hour += timedelta(hours=1)
    after = [m for m in rows(harness, Message) if m.priority == 1 and m.status == "sent"]
    resumed = [m for m in after if m.sent_at is not None and m.sent_at > paused_at]
    assert resumed, "nudges resume by themselves once the pause ends"
    assert all(m.sent_at >= paused_at + timedelta(hours=48) for m in resumed)


def test_pause_is_bounded_to_thirty_days_and_defaults_to_three(database_url: str) -> None:
    harness = subscribed(database_url)
    say(harness, "PAUSE 90")
    assert subscriber(harness).paused_until == harness.now + timedelta(days=30)
    say(harness, "pause")
    assert subscriber(harness).paused_until == harness.now + timedelta(days=3)


def test_resume_ends_a_pause_early_and_planning_starts_again(database_url: str) -> None:
    harness = welcomed(database_url)
    say(harness, "PAUSE")
    body = say(harness, "RESUME")

    assert body is not None
    assert "back on" in body
    assert subscriber(harness).paused_until is None
    harness.tick(harness.now + timedelta(minutes=1))
    assert len(scheduled_nudges(harness)) == 1


# --- MORE / LESS / WHY / HELP ---------------------------------------------------------


def test_more_and_less_step_the_cadence_within_three_to_twenty_one_a_week(
    database_url: str,
) -> None:
    harness = subscribed(database_url)
    assert subscriber(harness).cadence_per_week == 7
    assert "up to 10 msgs/week" in (say(harness, "MORE") or "")
    say(harness, "more")
    say(harness, "MORE")
    assert subscriber(harness).cadence_per_week == 21
    assert "already at the most" in (say(harness, "MORE") or "")
    assert subscriber(harness).cadence_per_week == 21

    for expected in (14, 10, 7, 5, 3):
        say(harness, "LESS")
        assert subscriber(harness).cadence_per_week == expected
    assert "already at the fewest" in (say(harness, "less") or "")
    assert subscriber(harness).cadence_per_week == 3


def test_why_names_the_rule_that_chose_the_last_nudge(database_url: str) -> None:
    harness = subscribed(database_url)
    assert "No nudge has gone out yet" in (say(harness, "WHY") or "")

    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))  # the welcome goes out
    assert RULES["welcome"] in (say(harness, "why?") or "")

    # A reply is an answer, not a nudge: WHY still explains the last nudge.
    harness.now += timedelta(hours=2)
    say(harness, "ME")
    assert RULES["welcome"] in (say(harness, "WHY") or "")
    harness.tick(harness.now + timedelta(days=1))  # the next nudge: restraint after ME
    assert RULES["restraint_after_me"] in (say(harness, "WHY") or "")


def test_help_lists_the_commands_and_the_safety_line(database_url: str) -> None:
    harness = subscribed(database_url, STEADY_SAFETY_LINE=SAFETY_LINE)
    body = say(harness, "HELP")
    assert body is not None
    for command in ("ME", "THEM", "DONE", "PAUSE", "MORE", "LESS", "WHY", "STOP"):
        assert command in body
    assert SAFETY_LINE in body


def test_unknown_text_gets_the_guide_and_is_kept_as_an_inbound_message(database_url: str) -> None:
    harness = subscribed(database_url)
    body = say(harness, "feeling a bit better today")
    assert body is not None
    assert "ME" in body
    assert "THEM" in body
    kept = rows(harness, InboundMessage)[-1]
    assert (kept.body, kept.command) == ("feeling a bit better today", "unknown")


def test_pending_number_logs_nothing_and_is_asked_to_confirm(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    body = say(harness, "ME")
    assert body is not None
    assert "YES" in body
    assert rows(harness, ContactLog) == []


# --- STOP -----------------------------------------------------------------------------


def test_stop_then_anything_else_is_silence(database_url: str) -> None:
    harness = welcomed(database_url)
    body = say(harness, "STOP")
    assert body is not None
    assert "unsubscribed" in body
    sent_before = len(sms_sent_to_phone(harness))

    for text in ("ME", "why", "thanks", "STOP", "PAUSE"):
        assert say(harness, text) is None, text
    assert rows(harness, ContactLog) == []
    for day in range(1, 4):
        harness.tick(NOON_NEW_YORK + timedelta(days=day))
    assert len(sms_sent_to_phone(harness)) == sent_before


@pytest.mark.parametrize(
    "text",
    ["Stop. Thank you", "please stop texting me", "opt out", "no more messages", "leave me alone"],
)
def test_plain_words_opt_out_stops_sms(database_url: str, text: str) -> None:
    harness = subscribed(database_url)
    body = say(harness, text)
    assert body is not None
    assert "unsubscribed" in body
    [channel] = rows(harness, Channel)
    assert channel.status == "stopped"


@pytest.mark.parametrize("text", ["he won't stop texting me", "I told him to stop texting me"])
def test_talk_about_someone_else_stopping_is_not_an_opt_out(database_url: str, text: str) -> None:
    harness = subscribed(database_url)
    body = say(harness, text)
    assert body is not None
    assert "unsubscribed" not in body
    [channel] = rows(harness, Channel)
    assert channel.status == "active"


# --- crisis ---------------------------------------------------------------------------


def test_crisis_words_get_the_safety_line_flag_the_subscriber_and_stop_nudges(
    database_url: str,
) -> None:
    harness = welcomed(database_url, STEADY_SAFETY_LINE=SAFETY_LINE)
    [queued] = scheduled_nudges(harness)
    body = say(harness, "I called him and now I want to kill myself")

    assert body is not None
    assert SAFETY_LINE in body
    assert "emergency" in body
    flagged = subscriber(harness)
    assert flagged.flagged_at == harness.now
    assert flagged.flag_reason == "crisis_words"
    assert rows(harness, ContactLog) == [], "crisis comes before logging"
    assert {m.id: m.status for m in rows(harness, Message)}[queued.id] == "cancelled"
    assert rows(harness, InboundMessage)[-1].command == "crisis"

    sent_before = len(sms_sent_to_phone(harness))
    for day in range(1, 5):
        harness.tick(NOON_NEW_YORK + timedelta(days=day))
    assert len(sms_sent_to_phone(harness)) == sent_before, "no nudges once flagged"


def test_crisis_words_with_stop_both_stop_and_answer_with_the_safety_line(
    database_url: str,
) -> None:
    harness = subscribed(database_url, STEADY_SAFETY_LINE=SAFETY_LINE)
    body = say(harness, "STOP. He hit me.")
    assert body is not None
    assert SAFETY_LINE in body
    assert "unsubscribed" in body
    [channel] = rows(harness, Channel)
    assert channel.status == "stopped"
    assert subscriber(harness).flag_reason == "crisis_words"


def test_crisis_reply_without_a_safety_line_points_to_local_emergency_services_by_no_number(
    database_url: str,
) -> None:
    harness = subscribed(database_url)
    body = say(harness, "I'm not safe at home")
    assert body is not None
    assert "local emergency number" in body
    assert "911" not in body, "a number that works in one country is wrong in another"
    assert "None" not in body


def test_unknown_number_with_crisis_words_gets_the_safety_reply(database_url: str) -> None:
    harness = Harness(make_settings(database_url, STEADY_SAFETY_LINE=SAFETY_LINE))
    response = harness.text_in(STRANGER, "he threatened to kill me")
    body = twiml_text(response.text)
    assert body is not None
    assert SAFETY_LINE in body
    assert "Steady" not in body[:40], "neutral on a lock screen"
    assert rows(harness, Subscriber) == []


def test_unknown_number_with_ordinary_text_gets_no_reply(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    assert twiml_text(harness.text_in(STRANGER, "ME").text) is None
