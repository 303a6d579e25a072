"""Safety in the replies (issue 10): lines of the person's country and kind of danger,
defence in depth for texts Steady does not understand, crisis and stop together, and
opt-out in Spanish and French, all through the signed webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.storage.models import Channel, InboundMessage, Message, Subscriber
from tests.replies.conversation import NOON_NEW_YORK, twiml_text
from tests.support.world import Harness, make_settings

US_PHONE = "+12125550142"
CA_PHONE = "+14165550142"
GB_PHONE = "+447400123456"
AU_PHONE = "+61412345678"
FR_PHONE = "+33612345678"  # France: no table in the file
STRANGER = "+12125550199"
LINES = """
[US]
crisis = "US crisis: call or text 988."
violence = "US violence: 1-800-799-7233."
[GB]
crisis = "GB crisis: Samaritans 116 123."
violence = "GB violence: 0808 2000 247."
[AU]
crisis = "AU crisis: Lifeline 13 11 14."
violence = "AU violence: 1800 737 732."
"""
FALLBACK = "Fallback: find a crisis line near you."


@pytest.fixture
def lines_file(tmp_path: Path) -> Path:
    path = tmp_path / "safety-lines.toml"
    path.write_text(LINES, encoding="utf-8")
    return path


def harness_with_lines(database_url: str, lines_file: Path, **overrides: Any) -> Harness:
    return Harness(
        make_settings(
            database_url,
            STEADY_SAFETY_LINES_FILE=str(lines_file),
            STEADY_SAFETY_LINE=FALLBACK,
            # People abroad may join by text only where the operator allows it (issue 11).
            STEADY_SMS_COUNTRIES="US,CA,GB,AU,FR",
            **overrides,
        )
    )


def joined(harness: Harness, phone: str) -> None:
    """A person who joined by text and confirmed: active on SMS."""
    assert "YES" in (say(harness, phone, "JOIN") or "")
    say(harness, phone, "YES")
    assert channel(harness, phone).status == "active"


def say(harness: Harness, phone: str, body: str) -> str | None:
    response = harness.text_in(phone, body)
    assert response.status_code == 200
    return twiml_text(response.text)


def channel(harness: Harness, phone: str) -> Channel:
    with harness.runtime.sessions() as session:
        found = session.scalar(select(Channel).where(Channel.address == phone))
        assert found is not None
        session.expunge(found)
        return found


def person(harness: Harness, phone: str) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.scalar(select(Subscriber).join(Channel).where(Channel.address == phone))
        assert found is not None
        session.expunge(found)
        return found


def replies_to(harness: Harness, phone: str) -> list[Message]:
    with harness.runtime.sessions() as session:
        found = list(
            session.scalars(
                select(Message)
                .join(Channel, Channel.id == Message.channel_id)
                .where(Channel.address == phone, Message.provider == "twiml")
                .order_by(Message.id)
            )
        )
        session.expunge_all()
        return found


# --- lines by country and kind of danger ---------------------------------------------


@pytest.mark.parametrize(
    ("phone", "text", "expected", "not_expected"),
    [
        (US_PHONE, "I want to kill myself", ["US crisis"], ["US violence", "GB", "AU"]),
        (GB_PHONE, "I want to kill myself", ["GB crisis"], ["GB violence", "US", "988"]),
        (AU_PHONE, "he hit me last night", ["AU violence"], ["AU crisis", "US", "GB"]),
        (GB_PHONE, "he hit me and I want to die", ["GB crisis", "GB violence"], ["US"]),
        (FR_PHONE, "I want to kill myself", [FALLBACK], ["US", "GB", "AU"]),
    ],
)
def test_crisis_reply_carries_the_lines_of_the_persons_country_and_danger(
    database_url: str,
    lines_file: Path,
    phone: str,
    text: str,
    expected: list[str],
    not_expected: list[str],
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, phone)
    body = say(harness, phone, text)
    assert body is not None
    for line in expected:
        assert line in body, body
    for other in not_expected:
        assert other not in body, body
    assert "local emergency number" in body
    assert "911" not in body
    assert person(harness, phone).flag_reason == "crisis_words"


def test_help_carries_both_lines_of_the_persons_country(
    database_url: str, lines_file: Path
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, AU_PHONE)
    body = say(harness, AU_PHONE, "HELP")
    assert body is not None
    assert "AU crisis" in body
    assert "AU violence" in body
    assert "US " not in body


def test_help_from_a_country_without_a_table_carries_the_fallback_once(
    database_url: str, lines_file: Path
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, FR_PHONE)
    body = say(harness, FR_PHONE, "HELP") or ""
    assert body.count(FALLBACK) == 1


def test_stranger_in_crisis_gets_the_lines_of_their_numbers_country(
    database_url: str, lines_file: Path
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    body = say(harness, GB_PHONE, "I can't go on, I want to end my life") or ""
    assert "GB crisis" in body
    assert "paused" not in body, "a stranger has no messages to pause"
    assert "Steady" not in body[:40]


# --- defence in depth: texts Steady does not understand --------------------------------


def test_an_unrecognised_text_gets_the_commands_and_the_crisis_line_and_is_kept_for_review(
    database_url: str, lines_file: Path
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, GB_PHONE)
    body = say(harness, GB_PHONE, "my sister is visiting this weekend") or ""
    for command in ("ME", "THEM", "HELP", "STOP"):
        assert command in body
    assert "GB crisis" in body
    assert "GB violence" not in body, "the guide carries the crisis line only"
    assert "automated" in body, "no pretending a person read it"
    with harness.runtime.sessions() as session:
        kept = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
        assert kept is not None
        assert (kept.command, kept.reviewed_at) == ("unknown", None)


def test_the_guide_without_any_line_configured_still_reads_whole(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    joined(harness, US_PHONE)
    body = say(harness, US_PHONE, "hmm not sure") or ""
    assert body.startswith("Steady: Sorry")
    assert "struggling" not in body


# --- crisis and stop in one text --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "stop texting me, I want to die",
        "Stop texting me. I want to die.",
        "STOP. He hit me.",
        "please stop texting me - I want to kill myself",
    ],
)
def test_stop_with_crisis_stops_sms_sends_the_line_in_the_one_reply_and_flags(
    database_url: str, lines_file: Path, text: str
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, US_PHONE)
    before = len(replies_to(harness, US_PHONE))
    body = say(harness, US_PHONE, text) or ""
    assert "unsubscribed" in body
    assert "US crisis" in body or "US violence" in body
    assert channel(harness, US_PHONE).status == "stopped"
    assert person(harness, US_PHONE).flagged_at is not None
    assert len(replies_to(harness, US_PHONE)) == before + 1, "exactly one reply"
    assert say(harness, US_PHONE, "STOP") is None, "and nothing more by SMS"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PARAR. Ya no quiero vivir", "Te diste de baja"),
        ("baja por favor, me quiero morir", "Te diste de baja"),
        ("Arrêtez de m'envoyer des messages, je veux mourir", "Vous etes désabonné"),
    ],
)
def test_a_stop_in_spanish_or_french_with_crisis_is_confirmed_in_that_language_with_the_line(
    database_url: str, lines_file: Path, text: str, words: str
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, US_PHONE)
    body = say(harness, US_PHONE, text) or ""
    assert words in body, body
    assert "US crisis" in body
    assert "unsubscribed" not in body, "not the English confirmation"
    assert channel(harness, US_PHONE).status == "stopped"
    assert person(harness, US_PHONE).flagged_at is not None


# --- opt-out in Spanish and French -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PARAR", "Te diste de baja"),
        ("Alto", "Te diste de baja"),
        ("BAJA", "Te diste de baja"),
        ("Cancelar", "Te diste de baja"),
        ("por favor dejen de enviarme mensajes", "Te diste de baja"),
        ("no más mensajes", "Te diste de baja"),
        ("ARRET", "Vous etes désabonné"),
        ("ARRÊT", "Vous etes désabonné"),
        ("Arrêtez de m'envoyer des messages", "Vous etes désabonné"),
        ("je ne veux plus de messages", "Vous etes désabonné"),
    ],
)
def test_spanish_and_french_opt_outs_stop_sms_with_one_confirmation_in_that_language(
    database_url: str, text: str, words: str
) -> None:
    harness = Harness(make_settings(database_url))
    joined(harness, CA_PHONE)
    body = say(harness, CA_PHONE, text) or ""
    assert body.startswith(f"Steady: {words}"), body
    assert "START" in body
    assert channel(harness, CA_PHONE).status == "stopped"
    assert say(harness, CA_PHONE, text) is None, "one confirmation, then silence"
    harness.tick(NOON_NEW_YORK.replace(day=5))
    assert [m for m in harness.sms.sent if m.to == CA_PHONE][2:] == [], "no nudge after"


def test_a_stranger_stopping_in_spanish_is_answered_in_spanish_and_suppressed(
    database_url: str,
) -> None:
    harness = Harness(make_settings(database_url))
    body = say(harness, STRANGER, "BAJA") or ""
    assert "Te diste de baja" in body
    assert "YES" in (say(harness, STRANGER, "JOIN") or ""), "JOIN from that phone reopens it"


@pytest.mark.parametrize(
    "text", ["il n'arrête pas de m'écrire", "él no deja de escribirme", "no para de llamarme"]
)
def test_someone_else_not_stopping_in_spanish_or_french_is_not_an_opt_out(
    database_url: str, text: str
) -> None:
    harness = Harness(make_settings(database_url))
    joined(harness, CA_PHONE)
    body = say(harness, CA_PHONE, text) or ""
    assert "baja" not in body.lower()
    assert "désabonn" not in body.lower()
    assert channel(harness, CA_PHONE).status == "active"


@pytest.mark.parametrize(("text", "words"), [("AYUDA", "Responde ME"), ("aide", "Répondez ME")])
def test_help_in_spanish_or_french_answers_in_that_language(
    database_url: str, lines_file: Path, text: str, words: str
) -> None:
    harness = harness_with_lines(database_url, lines_file)
    joined(harness, US_PHONE)
    body = say(harness, US_PHONE, text) or ""
    assert words in body
    assert "US crisis" in body
    # (Accents outside the GSM alphabet are dropped from SMS: "día" is sent as "dia".)
    assert {"AYUDA": "hasta 1 mensaje al dia", "aide": "jusqu'à 1 message par jour"}[text] in body
    assert "ZONE" in body


def test_help_names_zone_among_the_commands(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    joined(harness, US_PHONE)
    body = say(harness, US_PHONE, "HELP") or ""
    assert "ZONE" in body
    assert "time zone" in body


# --- contacts: the reply names the medium -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "opening"),
    [
        ("I emailed him", "Steady: Logged, you reached out by email."),
        ("he emailed me", "Steady: Logged, they reached out by email."),
        ("she left me a voicemail", "Steady: Logged, they reached out by voicemail."),
        ("left him a voicemail", "Steady: Logged, you reached out by voicemail."),
        ("I replied to his text", "Steady: Logged, they reached out by text."),
        ("texted him 3 times", "Steady: Logged, you reached out by text."),
        ("we met for coffee", "Steady: Logged, you were in touch in person, counted as you"),
    ],
)
def test_the_log_reply_names_the_medium_the_person_used(
    database_url: str, text: str, opening: str
) -> None:
    harness = Harness(make_settings(database_url))
    joined(harness, US_PHONE)
    body = say(harness, US_PHONE, text) or ""
    assert body.startswith(opening), body
    assert "by text" not in body or "text" in text, "an email is never 'by text'"
    assert "Reply ME" not in body, "the restraint asks for no second log"
