"""URGE, STATS and the daily question's answers, through the signed webhook (INTERFACE §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service.messages.catalog import RESTRAINT_TEMPLATES
from service.replies.grammar import interpret
from service.replies.grammar_rows import Command
from service.storage.models import (
    SURVEY_NO,
    SURVEY_YES,
    ActivityLog,
    Channel,
    ContactLog,
    InboundMessage,
    Message,
)
from tests.replies.conversation import NOON_NEW_YORK, PHONE, replies, rows, say, subscribed
from tests.support.world import Harness


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("URGE", Command.URGE),
        ("urge!", Command.URGE),
        ("I'm about to text him", Command.URGE),
        ("want to call her so bad", Command.URGE),
        ("about to message my ex", Command.URGE),
        ("I really want to text him right now", Command.URGE),
        ("trying not to call her", Command.URGE),
        ("STATS", Command.STATS),
        ("how am I doing?", Command.STATS),
        ("N", Command.SURVEY_NO),
        ("nope", Command.SURVEY_NO),
        ("yes I did", Command.SURVEY_YES),
        # Unchanged: YES still confirms, a plan for someone else is nothing, logs stay logs.
        ("Y", Command.CONFIRM),
        ("yes", Command.CONFIRM),
        ("I want to call my mom", Command.UNKNOWN),
        ("I texted him", Command.ME),
        ("he texted me", Command.THEM),
        ("no more messages", Command.STOP),
        ("did it", Command.DONE),
    ],
)
def test_grammar_reads_urges_stats_and_answers(text: str, command: Command) -> None:
    assert interpret(text).command == command


def test_urge_gets_a_restraint_message_at_once_as_a_reply(sqlite_url: str) -> None:
    harness = subscribed(sqlite_url)
    text = say(harness, "I'm about to text him")
    assert text is not None
    assert text.startswith("Steady: Pause before you send or call.")
    (reply,) = [m for m in replies(harness) if m.rule == "urge_reply"]
    assert reply.kind == "restraint"
    assert reply.template in RESTRAINT_TEMPLATES
    assert reply.priority == 0  # a reply: never a nudge, never against cadence or caps
    assert rows(harness, ContactLog) == []  # an urge is not a contact


def test_stats_counts_this_fortnight_both_ways_and_days_since_reaching_out(
    sqlite_url: str,
) -> None:
    harness = subscribed(sqlite_url)
    harness.now = NOON_NEW_YORK - timedelta(days=3)
    say(harness, "ME")
    harness.now = NOON_NEW_YORK - timedelta(days=2)
    say(harness, "THEM")
    say(harness, "DONE gym")
    harness.now = NOON_NEW_YORK - timedelta(days=20)  # outside the fortnight
    say(harness, "ME")
    harness.now = NOON_NEW_YORK
    text = say(harness, "STATS")
    assert text == (
        "Steady: It's 3 days since you last reached out. Last 14 days: you reached out 1x, "
        "they did 1x, and you logged 1 activity."
    )
    assert len(rows(harness, ContactLog)) == 3
    assert len(rows(harness, ActivityLog)) == 1


def _ask(harness: Harness, minutes_ago: int = 30) -> None:
    """A daily question that went out to the subscriber ``minutes_ago``."""
    with harness.runtime.sessions() as session:
        channel = session.scalars(select(Channel)).one()
        asked = harness.now - timedelta(minutes=minutes_ago)
        session.add(
            Message(
                subscriber_id=channel.subscriber_id,
                channel_id=channel.id,
                channel="sms",
                kind="survey",
                template="survey",
                rule="daily_survey",
                status="sent",
                scheduled_for=asked,
                sent_at=asked,
                created_at=asked,
                updated_at=asked,
            )
        )
        session.commit()


def _commands(harness: Harness) -> list[str | None]:
    return [m.command for m in rows(harness, InboundMessage)]


def test_a_yes_while_the_question_is_open_answers_it(sqlite_url: str) -> None:
    harness = subscribed(sqlite_url)
    harness.now = NOON_NEW_YORK + timedelta(hours=7)
    _ask(harness)
    text = say(harness, "Y")
    assert text is not None
    assert text.startswith("Steady: Thanks for the honest answer, noted.")
    assert _commands(harness)[-1] == SURVEY_YES
    (answer,) = [m for m in replies(harness) if m.rule == "survey_yes"]
    assert answer.kind == "restraint"  # it carries a restraint, as the reply to ME does
    # Answered: the next YES is a plain YES again.
    assert say(harness, "YES") is not None
    assert _commands(harness)[-1] == "confirm"


def test_no_answers_the_question_and_without_one_gets_the_guide(sqlite_url: str) -> None:
    harness = subscribed(sqlite_url)
    harness.now = NOON_NEW_YORK + timedelta(hours=7)
    guide = say(harness, "N")
    assert _commands(harness)[-1] == "answer_no"  # as read: nothing was asked, no answer
    assert guide is not None
    assert "reply_guide" in [m.template for m in replies(harness)]
    _ask(harness)
    text = say(harness, "no")
    assert (
        text == "Steady: Noted, no contact from you today. Holding back takes strength; well done."
    )
    assert _commands(harness)[-1] == SURVEY_NO


def test_a_question_older_than_twelve_hours_is_closed(sqlite_url: str) -> None:
    harness = subscribed(sqlite_url)
    harness.now = NOON_NEW_YORK + timedelta(days=1)
    _ask(harness, minutes_ago=13 * 60)
    say(harness, "Y")
    assert _commands(harness)[-1] == "confirm"


def test_yes_from_a_pending_number_still_confirms(sqlite_url: str) -> None:
    harness = Harness(subscribed(sqlite_url).settings)
    harness.now = NOON_NEW_YORK
    stranger = "+12125550177"
    harness.text_in(stranger, "JOIN")
    response = harness.text_in(stranger, "Y")
    assert "welcome aboard" in response.text.lower()
    with harness.runtime.sessions() as session:
        channel = session.scalars(select(Channel).where(Channel.address == stranger)).one()
        assert channel.status == "active"


@pytest.mark.parametrize("experiment", ["on", "off"])
def test_help_and_the_opt_in_say_that_messages_vary_only_when_on(
    sqlite_url: str, experiment: str
) -> None:
    harness = subscribed(sqlite_url, STEADY_EXPERIMENT=experiment)
    helped = say(harness, "HELP") or ""
    opt_in = harness.text_in("+12125550178", "JOIN").text
    sentence = "varies its texts to learn what helps"
    assert (sentence in helped) is (experiment == "on")
    assert (sentence in opt_in) is (experiment == "on")
    assert PHONE  # the subscriber's own number stays in the fixture
