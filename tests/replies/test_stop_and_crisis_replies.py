"""Replies to STOP and to crisis words, from subscribers and from unknown numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.storage.models import Channel, ContactLog, InboundMessage, Message, Subscriber
from tests.replies.conversation import (
    NOON_NEW_YORK,
    SAFETY_LINE,
    rows,
    say,
    scheduled_nudges,
    sms_sent_to_phone,
    subscribed,
    subscriber,
    twiml_text,
    welcomed,
)
from tests.support.world import Harness, make_settings

STRANGER = "+12125550199"


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
