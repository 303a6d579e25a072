"""The copy itself: every template, in both modes, reads as written by a careful person.

Each message starts with a capital letter (after the fixed "Steady: " opening), asks
for each command at most once, never implies that a person reads the texts (Steady is
automated), and names no emergency number of its own. The safety lines of the example
file fit in the replies that carry them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.messages.catalog import (
    BOTH_CHANNEL_TEMPLATES,
    RESTRAINT_TEMPLATES,
    SMS_ONLY_TEMPLATES,
    TIP_TEMPLATES,
)
from service.messages.compose import with_carried
from service.messages.content import Content, sample_context
from service.messages.safety_lines import read_lines_file
from service.messages.segments import count_segments

ALL_SMS = BOTH_CHANNEL_TEMPLATES + SMS_ONLY_TEMPLATES
MODES = pytest.mark.parametrize("discreet", [False, True], ids=["plain", "discreet"])
PREFIX = "Steady: "
EXAMPLE_LINES = Path(__file__).resolve().parents[2] / "deploy/safety-lines.example.toml"
MAX_SAFETY_SEGMENTS = 4

# Words a subscriber texts back: each may be asked for once per message.
COMMAND_WORDS = (
    "ME", "THEM", "STOP", "START", "HELP", "YES", "DONE", "PAUSE", "RESUME", "MORE", "LESS",
    "WHY", "UNDO", "PARAR", "ARRET",
)  # fmt: skip
# Wording that implies a person reads the texts (Steady is automated).
HUMAN_READER = re.compile(
    r"\b(?:we hear you|we(?:'re| are) (?:here|listening|worried)|we read|i'?m here|"
    r"someone (?:will|is) (?:read|call|get back)|our team (?:will|is) read)\b",
    re.IGNORECASE,
)
# Emergency numbers that work in one country and not in another.
EMERGENCY_NUMBER = re.compile(r"(?<![\d-])(?:911|999|000|112)(?![\d-])")


@pytest.fixture(scope="module")
def content() -> Content:
    return Content()


def starts_capitalised(text: str) -> bool:
    """True when the first letter after the "Steady: " opening is a capital."""
    rest = text.removeprefix(PREFIX)
    first = next((c for c in rest if c.isalpha()), "")
    return first.isupper()


def doubled_commands(text: str) -> list[str]:
    return [w for w in COMMAND_WORDS if len(re.findall(rf"\b{w}\b", text)) > 1]


def email_parts(content: Content, name: str, discreet: bool) -> dict[str, str]:
    email = content.email(name, sample_context(discreet=discreet, channel="email"))
    first_paragraph = re.search(r"<p[^>]*>(.*?)</p>", email.html, re.DOTALL)
    assert first_paragraph is not None, name
    return {"subject": email.subject, "text": email.text, "html": first_paragraph.group(1)}


# --- every template ----------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("name", ALL_SMS)
def test_every_sms_starts_with_a_capital_and_asks_each_command_once(
    content: Content, name: str, discreet: bool
) -> None:
    text = content.sms(name, sample_context(discreet=discreet))
    assert starts_capitalised(text), text
    assert doubled_commands(text) == [], text


@MODES
@pytest.mark.parametrize("name", ALL_SMS)
def test_no_sms_runs_two_sentences_together(content: Content, name: str, discreet: bool) -> None:
    """A template tag at a line's end can swallow the line break ("trust.If you")."""
    for safety_lines in ([], ["Call 116 123.", "Call 0808 2000 247."]):
        context = {**sample_context(discreet=discreet), "safety_lines": safety_lines}
        text = content.sms(name, context)
        assert re.search(r"[a-z][.!?:][A-Z]", text) is None, text


@MODES
@pytest.mark.parametrize("name", BOTH_CHANNEL_TEMPLATES)
def test_every_email_starts_with_a_capital_and_asks_each_command_once(
    content: Content, name: str, discreet: bool
) -> None:
    for part, text in email_parts(content, name, discreet).items():
        assert starts_capitalised(text), f"{name} {part}: {text[:60]}"
    body = content.email(name, sample_context(discreet=discreet, channel="email")).text
    assert doubled_commands(body) == [], body


@MODES
@pytest.mark.parametrize("name", ALL_SMS)
def test_no_sms_implies_a_person_reads_or_names_an_emergency_number(
    content: Content, name: str, discreet: bool
) -> None:
    text = content.sms(name, sample_context(discreet=discreet))
    assert HUMAN_READER.search(text) is None, text
    assert EMERGENCY_NUMBER.search(text) is None, text


@MODES
@pytest.mark.parametrize("name", BOTH_CHANNEL_TEMPLATES)
def test_no_email_implies_a_person_reads(content: Content, name: str, discreet: bool) -> None:
    email = content.email(name, sample_context(discreet=discreet, channel="email"))
    assert HUMAN_READER.search(email.subject + email.text) is None


@pytest.mark.parametrize(
    "text",
    ["Steady: we hear you, and we're worried.", "I'm here for you", "call 911 now", "Dial 000"],
)
def test_the_copy_checks_catch_what_they_look_for(text: str) -> None:
    assert HUMAN_READER.search(text) or EMERGENCY_NUMBER.search(text)


@pytest.mark.parametrize(
    ("text", "capitalised", "doubled"),
    [
        ("Steady: logged, you reached out.", False, []),
        ("Steady: Logged. Reply ME or THEM. Reply ME/THEM to log contact.", True, ["ME", "THEM"]),
        ("Reply STOP to cancel, STOP to end.", True, ["STOP"]),
        ("Steady: Call or text 988.", True, []),
    ],
)
def test_capital_and_doubled_command_checks_judge_correctly(
    text: str, capitalised: bool, doubled: list[str]
) -> None:
    assert starts_capitalised(text) is capitalised
    assert doubled_commands(text) == doubled


# --- replies that carry a restraint or a tip ---------------------------------------------


@MODES
@pytest.mark.parametrize("mutual", [False, True], ids=["me", "we"])
@pytest.mark.parametrize("restraint", RESTRAINT_TEMPLATES)
def test_me_reply_with_its_restraint_asks_for_no_second_log(
    content: Content, restraint: str, discreet: bool, mutual: bool
) -> None:
    context: dict[str, Any] = {**sample_context(discreet=discreet), "how": " by text"}
    confirmation = content.sms("reply_logged_me", {**context, "mutual": mutual})
    carried = content.sms(restraint, {**context, "carried": True})
    text = with_carried(confirmation, carried)
    assert starts_capitalised(text), text
    assert doubled_commands(text) == [], text
    assert not re.search(r"\bReply ME\b", text), text
    assert count_segments(text) <= 2, text


@MODES
@pytest.mark.parametrize("tip", TIP_TEMPLATES)
def test_them_reply_with_its_tip_reads_as_one_message(
    content: Content, tip: str, discreet: bool
) -> None:
    context: dict[str, Any] = {**sample_context(discreet=discreet), "how": " by email"}
    text = with_carried(content.sms("reply_logged_them", context), content.sms(tip, context))
    assert starts_capitalised(text), text
    assert doubled_commands(text) == [], text
    assert ". Noted." not in text, "the tip's own opening is dropped"
    assert count_segments(text) <= 2, text


def test_restraint_12_reads_grammatically() -> None:
    text = Content().sms("restraint_12", sample_context())
    assert "give you both" not in text
    assert "you both get" in text


# --- safety lines in the replies -----------------------------------------------------------


def example_countries() -> list[str]:
    return sorted(read_lines_file(EXAMPLE_LINES))


@MODES
@pytest.mark.parametrize("country", example_countries())
@pytest.mark.parametrize(
    "name",
    [
        "reply_crisis",
        "reply_crisis_stopped",
        "reply_crisis_stopped_es",
        "reply_crisis_stopped_fr",
        "reply_help",
        "reply_help_es",
        "reply_help_fr",
    ],
)
def test_both_safety_lines_of_every_example_country_fit_four_segments(
    content: Content, name: str, country: str, discreet: bool
) -> None:
    lines = read_lines_file(EXAMPLE_LINES)[country]
    both = [lines["crisis"], lines["violence"]]
    text = content.sms(name, {**sample_context(discreet=discreet), "safety_lines": both})
    for line in both:
        assert " ".join(line.split()) in " ".join(text.split()), line
    assert count_segments(text) <= MAX_SAFETY_SEGMENTS, (len(text), text)


@MODES
@pytest.mark.parametrize("name", ["reply_crisis", "reply_crisis_stopped"])
def test_crisis_reply_without_lines_still_points_to_local_emergency_services(
    content: Content, name: str, discreet: bool
) -> None:
    text = content.sms(name, {**sample_context(discreet=discreet), "safety_lines": []})
    assert "local emergency number" in text
    assert "someone you trust" in text
    assert not re.search(r":\s*If you are", text), "no dangling colon before the advice"
