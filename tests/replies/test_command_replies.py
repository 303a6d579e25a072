"""Replies to PAUSE, RESUME, MORE, LESS, WHY, HELP and texts Steady does not understand."""

from __future__ import annotations

from datetime import timedelta

from service.pacing.explanations import RULES
from service.storage.models import ContactLog, InboundMessage, Message
from tests.replies.conversation import (
    NOON_NEW_YORK,
    PHONE,
    SAFETY_LINE,
    rows,
    say,
    scheduled_nudges,
    sms_sent_to_phone,
    subscribed,
    subscriber,
    welcomed,
)
from tests.support.world import Harness, make_settings

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
