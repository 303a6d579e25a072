"""The zone question and the ZONE replies: short, plain GSM-7, discreet when asked."""

from __future__ import annotations

import re

import pytest

from service.messages.content import Content, normalise_gsm, sample_context
from service.messages.segments import count_segments

ASKS = [
    {},
    {"ask_zone": True, "zone_shared_hours": True},
    {"ask_zone": True, "zone_shared_hours": False},
]
ZONE_CONTEXT = {"zone": "Los Angeles time (America/Los_Angeles)", "hours": "9am and 8pm"}
REVEALING = re.compile(r"\b(?:separat\w*|partner|ex|spouse|marri\w*|divorc\w*|steady)\b", re.I)


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
@pytest.mark.parametrize("ask", ASKS, ids=["certain", "uncertain", "no-shared-hours"])
def test_the_welcome_reply_asks_for_the_zone_only_when_uncertain_in_two_segments(
    discreet: bool, ask: dict[str, bool]
) -> None:
    text = Content().sms("reply_confirmed", {**sample_context(discreet=discreet), **ask})
    assert normalise_gsm(text) == text
    assert count_segments(text) <= 2
    assert ("ZONE" in text) == bool(ask)
    if ask.get("zone_shared_hours") is False:
        assert "start once you reply ZONE" in text
        assert "first" not in text, "no promise of a first message that cannot come"
    if discreet:
        assert REVEALING.search(text) is None, text


@pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
@pytest.mark.parametrize("name", ["reply_zone", "reply_zone_unknown"])
def test_zone_replies_fit_one_segment_and_stay_neutral_when_discreet(
    name: str, discreet: bool
) -> None:
    text = Content().sms(name, {**sample_context(discreet=discreet), **ZONE_CONTEXT})
    assert count_segments(text) == 1
    assert text[0].isupper()
    if discreet:
        assert REVEALING.search(text) is None, text
    if name == "reply_zone":
        assert "America/Los_Angeles" in text
        assert "9am and 8pm" in text
