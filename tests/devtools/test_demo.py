"""`steady demo`: the simulated fortnight runs the real pacing and keeps its rules."""

from __future__ import annotations

import io
import itertools
import re
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from service.cli.main import app
from service.devtools.demo.personas import ALEX, JORDAN, PERSONAS, SAM, DemoResult
from service.devtools.demo.show import run_demo
from service.devtools.demo.timeline import simulate
from service.messages.catalog import NUDGE_KINDS

MAX_SMS_NUDGES_PER_24H = 3
MIN_NUDGE_SPACING = timedelta(hours=3)
PHONE_DIGITS = re.compile(r"\d{3}\D?\d{3}\D?\d{4}|555\D?01\d\d")


@pytest.fixture(scope="module")
def demo() -> tuple[DemoResult, str]:
    """One run of the demo, printed to a plain (non-terminal, colourless) console."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=False, color_system=None)
    return run_demo(console), buffer.getvalue()


def test_demo_prints_the_intro_and_every_persona_without_their_numbers(
    demo: tuple[DemoResult, str],
) -> None:
    _, output = demo
    assert "Steady texts short nudges" in output
    assert "Mon 2 Mar" in output
    for persona in PERSONAS:
        assert persona.name in output
        assert persona.phone not in output
    assert not PHONE_DIGITS.search(output), "no phone number may be printed"
    assert "What you saw" in output


def test_every_persona_gets_about_a_nudge_a_day(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    for persona in PERSONAS:
        nudges = result[persona.name].nudges
        assert 10 <= len(nudges) <= 3 * 14, persona.name
        assert {n.kind for n in nudges} <= {str(kind) for kind in NUDGE_KINDS}


def test_nudges_only_go_between_8_and_20_local_time(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    for persona in PERSONAS:
        for nudge in result[persona.name].nudges:
            assert 8 <= nudge.local.hour < 20, (persona.name, nudge)
            assert str(nudge.local.tzinfo) == persona.timezone


def test_nudges_keep_the_sms_cap_and_three_hour_spacing(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    for persona in PERSONAS:
        times = sorted(n.at for n in result[persona.name].nudges)
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= MIN_NUDGE_SPACING, (persona.name, earlier, later)
        for start in times:
            in_day = [t for t in times if start <= t < start + timedelta(hours=24)]
            assert len(in_day) <= MAX_SMS_NUDGES_PER_24H, (persona.name, start)


def test_every_text_in_is_answered_at_once_and_replies_are_not_nudges(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    for persona in PERSONAS:
        texts_in = [e for e in result[persona.name].events if e.source == "inbound"]
        replies = result[persona.name].replies
        assert len(texts_in) == 1 + len(persona.script)  # the YES, then the script
        answered = {reply.at for reply in replies}
        assert answered <= {text.at for text in texts_in}, "replies only answer texts, at once"
        for text in texts_in:
            # Several logs within an hour may share one calm reply, but never go unanswered.
            burst = [t for t in texts_in if timedelta(0) <= text.at - t.at <= timedelta(hours=1)]
            assert any(t.at in answered for t in burst), (persona.name, text)
        assert not any(reply.is_nudge for reply in replies)
        assert all(nudge.source == "nudge" for nudge in result[persona.name].nudges)


def test_over_reacher_gets_more_restraint_than_the_steady_persona(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    alex, sam, jordan = result[ALEX.name], result[SAM.name], result[JORDAN.name]
    if alex.logs["me"] == 0:
        pytest.skip("the reply grammar does not log ME yet (inbound.py is being extended)")
    assert alex.logs["me"] >= 5
    assert jordan.logs["them"] >= 3
    assert alex.share_of_nudges("restraint") > sam.share_of_nudges("restraint")
    assert any(r.kind == "restraint" for r in alex.replies), "ME's reply carries restraint"
    assert any(r.kind == "tip" for r in jordan.replies), "THEM's reply carries a tip"


def test_demo_ignores_the_environment_database_and_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "must-not-exist.db"
    monkeypatch.chdir(tmp_path)  # the default URL would be ./steady.db here
    monkeypatch.setenv("STEADY_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-a-real-token")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    monkeypatch.setenv("STEADY_TWILIO_API_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("STEADY_ENV", "production")  # would refuse to start without secrets

    result = simulate(days=3)

    assert not database.exists()
    assert list(tmp_path.iterdir()) == [], "the demo wrote into the working directory"
    assert all(result[p.name].nudges for p in PERSONAS), "nudges went to the outbox"


def test_steady_demo_command_exits_zero() -> None:
    outcome = CliRunner().invoke(app, ["demo"])
    assert outcome.exit_code == 0, outcome.output
    assert "Jordan" in outcome.output
