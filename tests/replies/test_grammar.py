"""The reply grammar as a table: what each text means, and what it must not mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.messages.catalog import ACTIVITY_AREAS
from service.replies.crisis import CrisisDetector, read_extra_phrases
from service.replies.grammar import AREA_KEYWORDS, Intent, infer_area, interpret, parse
from service.replies.grammar_rows import Command

C = Command

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


# --- crisis words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I want to kill myself",
        "having suicidal thoughts tonight",
        "I just want to die",
        "he hit me last night",
        "She hit me again",
        "he's been hitting me",
        "he threatened to kill me",
        "I'm afraid for my life",
        "I'm not safe here",
        "I feel like I'm in danger",
        "it was abuse",
        "he has a gun",
    ],
)
def test_crisis_words_are_found(text: str) -> None:
    assert CrisisDetector().found_in(text)


@pytest.mark.parametrize(
    "text",
    [
        "It finally hit me that it's over",
        "this week is killing me",
        "he hurt me so much",
        "he kicked me out of the house",
        "I texted him",
        "DONE gym",
        "stop",
    ],
)
def test_everyday_figures_of_speech_are_not_crisis_words(text: str) -> None:
    assert not CrisisDetector().found_in(text)


def test_crisis_words_file_adds_phrases_ignoring_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "crisis.txt"
    path.write_text("# operator additions\n\nRed Balloon  # code word\nwalking away\n")
    assert read_extra_phrases(path) == ("Red Balloon", "walking away")
    words = CrisisDetector.from_file(path)
    assert words.found_in("The RED balloon is up")
    assert not words.found_in("balloons, red ones")
    assert words.found_in("I want to die")  # the built-in list still applies


def test_unreadable_crisis_words_file_keeps_the_built_in_list(tmp_path: Path) -> None:
    words = CrisisDetector.from_file(tmp_path / "missing.txt")
    assert words.found_in("suicide")


# --- opt-out in Spanish and French --------------------------------------------------------

OPT_OUT_ES_FR: list[tuple[str, str]] = [
    ("PARAR", "es"),
    ("parar", "es"),
    ("Alto", "es"),
    ("ALTO!", "es"),
    ("BAJA", "es"),
    ("baja por favor", "es"),
    ("CANCELAR", "es"),
    ("Cancelar, gracias", "es"),
    ("DETENER", "es"),
    ("darme de baja", "es"),
    ("Quiero darme de baja", "es"),
    ("no más mensajes", "es"),
    ("No mas mensajes por favor", "es"),
    ("ya no quiero mensajes", "es"),
    ("Ya no quiero recibir más mensajes", "es"),
    ("por favor dejen de enviarme mensajes", "es"),
    ("Dejen de mandarme mensajes!", "es"),
    ("deja de escribirme", "es"),
    ("No me envíen más mensajes", "es"),
    ("quítenme de la lista", "es"),
    ("stop por favor", "es"),
    ("ARRET", "fr"),
    ("ARRÊT", "fr"),
    ("arrêt svp", "fr"),
    ("Arrête", "fr"),
    ("arrêtez", "fr"),
    ("Arrêtez de m'envoyer des messages", "fr"),
    ("arrête de m’écrire svp", "fr"),
    ("Arrêtez les messages, merci", "fr"),
    ("désabonner", "fr"),
    ("Désabonnez-moi", "fr"),
    ("je veux me désabonner", "fr"),
    ("Je ne veux plus de messages", "fr"),
    ("je ne veux plus recevoir de messages", "fr"),
    ("plus de messages svp", "fr"),
    ("Ne m'envoyez plus de messages", "fr"),
    ("ANNULER", "fr"),
    ("stop merci", "fr"),
    ("Stop svp", "fr"),
    ("Gracias por todo. Por favor dejen de enviarme mensajes.", "es"),
    ("Merci pour tout. Arrêtez svp.", "fr"),
]

# Speaking of someone else who will not stop: never an opt-out, in any language.
NOT_OPT_OUT_ES_FR = [
    "il n'arrête pas de m'écrire",
    "Il n’arrête pas de m’envoyer des messages",
    "elle ne veut plus de mes messages",
    "je lui ai dit d'arrêter de m'écrire",
    "él no deja de escribirme",
    "no para de mandarme mensajes",
    "le dije que dejara de escribirme",
    "ella ya no quiere mis mensajes",
    "para mi cumpleaños",
]


@pytest.mark.parametrize(("text", "language"), OPT_OUT_ES_FR)
def test_spanish_and_french_opt_outs_stop_in_their_language(text: str, language: str) -> None:
    intent = interpret(text)
    assert (intent.command, intent.language) == (Command.STOP, language), text


@pytest.mark.parametrize("text", NOT_OPT_OUT_ES_FR)
def test_spanish_and_french_talk_about_someone_else_is_not_an_opt_out(text: str) -> None:
    assert interpret(text).command != Command.STOP, text


@pytest.mark.parametrize(("text", "language"), [("AYUDA", "es"), ("aide", "fr"), ("HELP", None)])
def test_help_is_read_in_its_language(text: str, language: str | None) -> None:
    assert interpret(text) == Intent(Command.HELP, language=language)


def test_english_opt_outs_carry_no_language() -> None:
    assert interpret("STOP").language is None
    assert interpret("please stop texting me").language is None


# --- a stop request inside a longer text ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "stop texting me, I want to die",
        "Stop texting me. I want to die",
        "please stop texting me - I can't do this anymore",
        "Please stop texting me and leave me alone",
        "ok, stop",
        "no more messages, thanks for trying",
        "I'm done with this, unsubscribe",
        "dejen de enviarme mensajes, ya no puedo más",
    ],
)
def test_a_stop_request_in_one_clause_of_a_longer_text_stops(text: str) -> None:
    assert interpret(text).command == Command.STOP, text


@pytest.mark.parametrize(
    "text",
    [
        "he won't stop, it's driving me mad",
        "he won't stop texting me, what do I do",
        "I asked him to stop, he didn't listen",
        "stop and think",
        "I want to stop texting him, but it's hard",
        "she won't leave me alone, and I can't sleep",
    ],
)
def test_a_clause_about_someone_else_stopping_does_not_stop(text: str) -> None:
    assert interpret(text).command != Command.STOP, text


# --- contacts: who started it, and by what ---------------------------------------------------

# (text, command, medium, mutual): the table the grammar was written from.
CONTACT_TABLE: list[tuple[str, Command, str | None, bool]] = [
    ("I replied to his text", C.THEM, "text", False),
    ("I answered her call", C.THEM, "call", False),
    ("replied to her message", C.THEM, "text", False),
    ("I responded to his email", C.THEM, "email", False),
    ("I got back to him", C.THEM, "text", False),
    ("I texted him back", C.THEM, "text", False),
    ("I called her back", C.THEM, "call", False),
    ("I returned his call", C.THEM, "call", False),
    ("I picked up when he called", C.THEM, "call", False),
    ("left him a voicemail", C.ME, "voicemail", False),
    ("I left her a message", C.ME, "voicemail", False),
    ("I left my ex a long voicemail", C.ME, "voicemail", False),
    ("I sent her a few texts", C.ME, "text", False),
    ("I sent him like 5 texts", C.ME, "text", False),
    ("sent a couple of messages to him", C.ME, "text", False),
    ("texted him 3 times", C.ME, "text", False),
    ("called her twice", C.ME, "call", False),
    ("I emailed him", C.ME, "email", False),
    ("I wrote him an email", C.ME, "email", False),
    ("I sent him an email", C.ME, "email", False),
    ("ME EMAIL", C.ME, "email", False),
    ("I facetimed him", C.ME, "call", False),
    ("ugh I caved and called him again", C.ME, "call", False),
    ("she left me a voicemail", C.THEM, "voicemail", False),
    ("he left me a message", C.THEM, "voicemail", False),
    ("he emailed me", C.THEM, "email", False),
    ("she sent me an email", C.THEM, "email", False),
    ("he sent me a bunch of texts", C.THEM, "text", False),
    ("got a voicemail from her", C.THEM, "voicemail", False),
    ("missed call from him", C.THEM, "call", False),
    ("I had a missed call from my ex", C.THEM, "call", False),
    ("he tried to call", C.THEM, "call", False),
    ("she tried calling me", C.THEM, "call", False),
    ("he replied", C.THEM, "text", False),
    ("she texted back", C.THEM, "text", False),
    ("he got back to me", C.THEM, None, False),
    ("my husband emailed me this morning", C.THEM, "email", False),
    ("heard from him today", C.THEM, None, False),
    ("THEM EMAIL", C.THEM, "email", False),
    ("her voicemail", C.THEM, "voicemail", False),
    ("we met for coffee", C.ME, "saw", True),
    ("we had lunch", C.ME, "saw", True),
    ("We talked on the phone last night", C.ME, "call", True),
    ("we texted a bit", C.ME, "text", True),
    ("had coffee with him", C.ME, "saw", True),
    ("me and my ex met up", C.ME, "saw", True),
]


@pytest.mark.parametrize(("text", "command", "medium", "mutual"), CONTACT_TABLE)
def test_contact_phrases_log_who_started_it_and_how(
    text: str, command: Command, medium: str | None, mutual: bool
) -> None:
    intent = interpret(text)
    assert (intent.command, intent.medium, intent.mutual) == (command, medium, mutual), text


@pytest.mark.parametrize(
    "text",
    [
        "I called my mom",
        "he texted my sister",
        "I emailed my lawyer",
        "she called the kids",
        "I sent flowers to my mom",
        "we went to the park",
        "I replied to the school",
    ],
)
def test_contact_with_someone_else_is_not_logged(text: str) -> None:
    assert interpret(text).command not in (Command.ME, Command.THEM), text


# --- held-out contact phrasings --------------------------------------------------------------

HELD_OUT = Path(__file__).with_name("contact_phrases_heldout.tsv")
# Measured on the held-out file: 37 of 48 (77 %) before the general fixes it showed
# up (bare past tenses "he text me", "got a text off him", "came round", going over
# to their place, "I called and ..."), 47 of 48 after them. The floor below catches a
# regression without pretending the set is still unseen.
HELD_OUT_FLOOR = 0.95


def held_out_rows() -> list[tuple[str, Command, str | None]]:
    rows = []
    for line in HELD_OUT.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, command, medium = line.split("\t")
        rows.append((text, Command(command), None if medium == "-" else medium))
    return rows


def test_held_out_contact_phrasings_are_logged_with_their_medium(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = held_out_rows()
    assert len(rows) >= 40
    misses = [
        (text, command, medium, interpret(text))
        for text, command, medium in rows
        if (interpret(text).command, interpret(text).medium) != (command, medium)
    ]
    rate = 1 - len(misses) / len(rows)
    with capsys.disabled():
        print(f"\nheld-out contact phrasings: {len(rows) - len(misses)}/{len(rows)} ({rate:.0%})")
        for text, command, medium, got in misses:
            print(f"  miss: {text!r} want {command}/{medium}, got {got.command}/{got.medium}")
    assert rate >= HELD_OUT_FLOOR, misses
