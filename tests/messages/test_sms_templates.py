"""Every SMS in the catalogue renders, fits its segments and keeps discretion on the lock screen."""

from __future__ import annotations

import re

import pytest

from service.messages.catalog import BOTH_CHANNEL_TEMPLATES
from service.messages.content import Content, normalise_gsm, sample_context
from service.messages.segments import count_segments
from tests.messages.template_rules import ALL_SMS, LOCK_SCREEN_CHARS, SENSITIVE

# Texts the planner schedules or sends as one-liners; only HELP and the crisis replies,
# which carry the person's safety lines, may run longer.
LONGER_SMS = (
    "reply_help",
    "reply_help_es",
    "reply_help_fr",
    "reply_crisis",
    "reply_crisis_stopped",
    "reply_crisis_stopped_es",
    "reply_crisis_stopped_fr",
)
TWO_SEGMENT_SMS = tuple(name for name in ALL_SMS if name not in LONGER_SMS)


# Nudges must stay neutral all the way through in discreet mode; confirm and the
# replies must name the programme (CTIA), just not on the lock screen.
DISCREET_NEUTRAL_SMS = tuple(name for name in BOTH_CHANNEL_TEMPLATES if name != "confirm")


MAX_NUDGE_SEGMENTS = 2
MAX_HELP_SEGMENTS = 4


# --- SMS --------------------------------------------------------------------------


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
@pytest.mark.parametrize("name", TWO_SEGMENT_SMS)
def test_sms_is_gsm7_and_fits_two_segments(content: Content, name: str, discreet: bool) -> None:
    text = content.sms(name, sample_context(discreet=discreet))
    assert text
    text.encode("gsm03.38")  # raises if a character would force UCS-2
    assert normalise_gsm(text) == text
    assert count_segments(text) <= MAX_NUDGE_SEGMENTS, text


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
def test_reply_help_lists_commands_and_fits_four_segments(content: Content, discreet: bool) -> None:
    context = sample_context(discreet=discreet)
    text = content.sms("reply_help", context)
    for command in ("ME", "THEM", "DONE", "PAUSE", "MORE", "LESS", "WHY", "STOP"):
        assert re.search(rf"\b{command}\b", text), command
    assert context["program"] in text
    assert context["frequency"] in text
    assert context["support_contact"] in text
    assert context["safety_lines"][0] in text
    assert count_segments(text) <= MAX_HELP_SEGMENTS


def test_reply_help_leaves_out_support_lines_that_are_not_set(content: Content) -> None:
    text = content.sms(
        "reply_help", {**sample_context(), "support_contact": None, "safety_lines": []}
    )
    assert "None" not in text
    assert "support now" not in text
    assert not text.endswith(":")


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
def test_confirm_sms_carries_the_carrier_required_disclosures(
    content: Content, discreet: bool
) -> None:
    context = sample_context(discreet=discreet)
    text = content.sms("confirm", context)
    assert "Steady" in text
    assert context["frequency"] in text
    assert "Msg & data rates may apply" in text
    for word in ("YES", "HELP", "STOP"):
        assert re.search(rf"\b{word}\b", text), word


@pytest.mark.parametrize("name", ALL_SMS)
def test_plain_sms_names_the_sender_first(content: Content, name: str) -> None:
    assert content.sms(name, sample_context()).startswith("Steady: ")


@pytest.mark.parametrize("name", ALL_SMS)
def test_discreet_sms_shows_no_sensitive_word_on_the_lock_screen(
    content: Content, name: str
) -> None:
    text = content.sms(name, sample_context(discreet=True))
    assert SENSITIVE.search(text[:LOCK_SCREEN_CHARS]) is None, text


@pytest.mark.parametrize("name", DISCREET_NEUTRAL_SMS)
def test_discreet_nudge_sms_is_neutral_throughout(content: Content, name: str) -> None:
    text = content.sms(name, sample_context(discreet=True))
    assert SENSITIVE.search(text) is None, text


@pytest.mark.parametrize(
    "text",
    ["Steady: hi", "Your partner", "your ex-", "after the separation", "reach out less"],
)
def test_sensitive_word_check_catches_revealing_openings(text: str) -> None:
    assert SENSITIVE.search(text)


def test_sensitive_word_check_ignores_words_that_merely_contain_them() -> None:
    assert SENSITIVE.search("Next text: steadier, expect, exercise") is None
