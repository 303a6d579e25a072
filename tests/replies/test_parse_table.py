"""The reply grammar, table-driven: commands, media, pause days, DONE notes and their areas."""

from __future__ import annotations

import pytest

from service.messages.catalog import ACTIVITY_AREAS
from service.replies.grammar import AREA_KEYWORDS, Intent, infer_area, interpret, parse
from service.replies.grammar_rows import Command
from tests.replies.grammar_helpers import C

# (text, command, medium) — medium only for ME / THEM.
PARSE_TABLE: list[tuple[str, Command, str | None]] = [
    # Opt-out keywords and plain words (CTIA keywords, FCC 2025 "reasonable means").
    ("STOP", C.STOP, None),
    ("stop", C.STOP, None),
    ("  Stop!!! ", C.STOP, None),
    ("Stop. Thank you", C.STOP, None),
    ("stop please", C.STOP, None),
    ("STOPALL", C.STOP, None),
    ("UNSUBSCRIBE", C.STOP, None),
    ("Unsubscribe me", C.STOP, None),
    ("cancel", C.STOP, None),
    ("END", C.STOP, None),
    ("quit", C.STOP, None),
    ("revoke", C.STOP, None),
    ("OPTOUT", C.STOP, None),
    ("opt out", C.STOP, None),
    ("Opt me out please", C.STOP, None),
    ("please stop texting me", C.STOP, None),
    ("Can you stop sending me these messages?", C.STOP, None),
    ("no more messages", C.STOP, None),
    ("Don't text me anymore", C.STOP, None),
    ("take me off your list", C.STOP, None),
    ("remove me from this list", C.STOP, None),
    ("leave me alone", C.STOP, None),
    ("I don't want these messages", C.STOP, None),
    ("stpo", C.STOP, None),
    ("stoooop", C.STOP, None),
    ("Thanks for everything. Please stop.", C.STOP, None),
    ("stop 🛑", C.STOP, None),
    # About someone else: never an opt-out.
    ("he won't stop texting me", C.UNKNOWN, None),
    ("I told him to stop texting me", C.UNKNOWN, None),
    ("she won't leave me alone", C.UNKNOWN, None),
    ("I want to stop texting", C.UNKNOWN, None),
    ("stop texting him", C.UNKNOWN, None),
    # Opt-in and help.
    ("YES", C.CONFIRM, None),
    ("yes!", C.CONFIRM, None),
    ("Y", C.CONFIRM, None),
    ("START", C.START, None),
    ("unstop", C.START, None),
    ("JOIN", C.JOIN, None),
    ("HELP", C.HELP, None),
    ("info", C.HELP, None),
    ("hlep", C.HELP, None),
    # ME.
    ("ME", C.ME, None),
    ("me.", C.ME, None),
    ("Me text", C.ME, "text"),
    ("ME CALL", C.ME, "call"),
    ("me saw", C.ME, "saw"),
    ("mee", C.ME, None),
    ("I texted him", C.ME, "text"),
    ("I called her", C.ME, "call"),
    ("i messaged them", C.ME, "text"),
    ("I saw her at the school gate", C.ME, "saw"),
    ("reached out to him", C.ME, None),
    ("I reached out", C.ME, None),
    ("ugh, I caved and texted him 😔", C.ME, "text"),
    ("I sent him a message", C.ME, "text"),
    ("I met my ex for coffee", C.ME, "saw"),
    # THEM.
    ("THEM", C.THEM, None),
    ("them!", C.THEM, None),
    ("HIM", C.THEM, None),
    ("her", C.THEM, None),
    ("THEM TEXT", C.THEM, "text"),
    ("him call", C.THEM, "call"),
    ("HER SAW", C.THEM, "saw"),
    ("thme", C.THEM, None),
    ("he called me", C.THEM, "call"),
    ("she texted", C.THEM, "text"),
    ("She messaged me last night", C.THEM, "text"),
    ("they reached out", C.THEM, None),
    ("he came over", C.THEM, "saw"),
    ("I got a text from her", C.THEM, "text"),
    ("my ex just called", C.THEM, "call"),
    # Steady's commands.
    ("UNDO", C.UNDO, None),
    ("undo that", C.UNDO, None),
    ("DONE", C.DONE, None),
    ("DONE gym", C.DONE, None),
    ("done - went to yoga class", C.DONE, None),
    ("dnoe", C.DONE, None),
    ("PAUSE", C.PAUSE, None),
    ("pause 2", C.PAUSE, None),
    ("pasue", C.PAUSE, None),
    ("RESUME", C.RESUME, None),
    ("MORE", C.MORE, None),
    ("more please", C.MORE, None),
    ("LESS", C.LESS, None),
    ("fewer messages", C.LESS, None),
    ("WHY", C.WHY, None),
    ("why?", C.WHY, None),
    ("why did I get this", C.WHY, None),
    # Everything else.
    ("", C.UNKNOWN, None),
    ("ok 👍", C.UNKNOWN, None),
    ("hi", C.UNKNOWN, None),
    ("then", C.UNKNOWN, None),
    ("none", C.UNKNOWN, None),
    ("I called my mom", C.UNKNOWN, None),
    ("he texted my sister", C.UNKNOWN, None),
    ("thanks, that helped", C.UNKNOWN, None),
]


def test_the_parse_table_has_at_least_sixty_examples() -> None:
    assert len(PARSE_TABLE) >= 60


@pytest.mark.parametrize(("text", "command", "medium"), PARSE_TABLE)
def test_text_parses_to_command_and_medium(text: str, command: Command, medium: str | None) -> None:
    intent = interpret(text)
    assert intent.command == command, text
    assert intent.medium == medium, text
    assert parse(text) == command


def test_parse_reads_a_lowercase_stop() -> None:
    assert parse("stop") == Command.STOP


@pytest.mark.parametrize(
    ("text", "days"),
    [("PAUSE", None), ("pause 2", 2), ("pause for 5 days", 5), ("pause a week", 7), ("PAUSE 0", 0)],
)
def test_pause_reads_days_as_written(text: str, days: int | None) -> None:
    assert interpret(text) == Intent(Command.PAUSE, days=days)


@pytest.mark.parametrize(
    ("text", "note", "area"),
    [
        ("DONE", None, None),
        ("DONE gym", "gym", "fitness"),
        ("done - went to yoga class", "went to yoga class", "fitness"),
        ("Done: cooking class", "cooking class", "creative"),
        ("done went for a walk in the park", "went for a walk in the park", "outdoors"),
        ("done coffee with a friend", "coffee with a friend", "friends"),
        ("done volunteered at the food bank", "volunteered at the food bank", "community"),
        ("done read a book", "read a book", "learning"),
        ("done laundry", "laundry", None),
    ],
)
def test_done_keeps_the_note_and_infers_the_area(
    text: str, note: str | None, area: str | None
) -> None:
    intent = interpret(text)
    assert (intent.command, intent.note, intent.area) == (Command.DONE, note, area)


def test_area_keywords_cover_exactly_the_catalogue_areas() -> None:
    assert {area for _, area in AREA_KEYWORDS} == set(ACTIVITY_AREAS)
    assert infer_area(None) is None
