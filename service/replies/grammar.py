"""The SMS reply grammar (INTERFACE.md §3) as a table: pattern → command.

``interpret(text)`` normalises a text (case folded; apostrophes dropped, so
"don't" reads "dont"; punctuation and emoji become spaces; a letter repeated
three or more times is cut to two) and returns the first row of ``GRAMMAR``
whose pattern matches the *whole* text. Rows are ordered: opt-out first, then
the carrier keywords, then Steady's commands, then natural phrases.

Opt-out (FCC 2025: "any reasonable means") is matched generously but only where
the words are addressed to us: the STOP keywords, alone or with courtesy words
("Stop. Thank you", "stop please"), and requests that *begin* with stopping us
("please stop texting me", "no more messages", "opt me out", "leave me alone").
A text that merely contains "stop" ("he won't stop texting me", "I told him to
stop texting me") is not an opt-out: it is about someone else. A text that
matches nothing as a whole is also read sentence by sentence for an opt-out, so
"Thanks for everything. Please stop." stops.

Typos: a one-word text may be corrected to the nearest command word with
``difflib`` ("mee", "thme", "pasue"). Never towards STOP or consent (YES, START,
JOIN): opt-out and opt-in must be unmistakable, so their common misspellings are
spelled out in the table instead ("stpo", "unsubscibe"). Real words that sit
close to a command ("then", "none", "hi") are never corrected.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass

from service.replies.grammar_rows import GRAMMAR, NUMBER_WORDS, Command, Row
from service.replies.phrases import medium_of


@dataclass(frozen=True)
class Intent:
    """What a text asks for, with the details some commands carry."""

    command: Command
    medium: str | None = None  # ME / THEM: text | email | call | voicemail | saw
    days: int | None = None  # PAUSE: as written, before bounding
    note: str | None = None  # DONE: the free text after the keyword
    area: str | None = None  # DONE: one of catalog.ACTIVITY_AREAS, inferred from the note
    language: str | None = None  # STOP / HELP asked in "es" or "fr"; None = English
    mutual: bool = False  # ME: "we met", nobody named as starting it (replies.phrases)
    place: str | None = None  # ZONE: a city, ZIP code or zone name, as normalised words


# One-word typos: corrected to these, and only these, words.
FUZZY_WORDS: dict[str, Command] = {
    "me": Command.ME,
    "them": Command.THEM,
    "him": Command.THEM,
    "her": Command.THEM,
    "undo": Command.UNDO,
    "done": Command.DONE,
    "pause": Command.PAUSE,
    "resume": Command.RESUME,
    "more": Command.MORE,
    "less": Command.LESS,
    "why": Command.WHY,
    "help": Command.HELP,
    "info": Command.HELP,
}
FUZZY_CUTOFF = 0.75
# Real words within FUZZY_CUTOFF of a command word: they mean themselves.
NEVER_CORRECTED = frozenset(
    {"then", "theme", "hem", "here", "hi", "hey", "none", "gone", "bone", "one", "cause",
     "mode", "move", "mote", "lose", "loss", "hello", "hell", "held", "hero", "herb", "whey",
     "who", "undone", "dome", "dune", "dine", "mom", "men", "mel", "mere", "note", "nope",
     "mine", "pace", "pulse", "into", "inform", "hr"}
)  # fmt: skip

# DONE: the first keyword found in the note decides the area. Specific words come
# before general ones, so "yoga class" is fitness and "cooking class" creative.
AREA_KEYWORDS: tuple[tuple[str, str], ...] = (
    (
        r"gym|run|ran|running|jog\w*|yoga|pilates|swim\w*|swam|workout|work out|worked out|"
        r"exercise\w*|bike|biked|cycl\w*|spin|tennis|football|soccer|basketball|climb\w*|"
        r"dance|danced|dancing|lift\w*|weights|crossfit|boxing|sport\w*|team",
        "fitness",
    ),
    (
        r"walk\w*|hike|hiked|hiking|park|outside|outdoors|nature|garden\w*|beach|fresh air|"
        r"woods|forest|lake|sunshine|sun",
        "outdoors",
    ),
    (
        r"cook\w*|bake|baked|baking|paint\w*|draw\w*|drew|music|guitar|piano|sing|sang|"
        r"singing|choir|knit\w*|craft\w*|journal\w*|writ\w*|wrote|photo\w*|pottery|sew\w*",
        "creative",
    ),
    (
        r"volunteer\w*|church|temple|mosque|synagogue|club|meetup|meet up|group|neighbou?r\w*|"
        r"charity|community|food bank|service",
        "community",
    ),
    (
        r"friends?|mates?|buddy|family|mum|mom|dad|sister|brother|cousin|parents|coffee with|"
        r"lunch with|dinner with|drinks with|brunch|catch up|caught up|party",
        "friends",
    ),
    (
        r"class|course|lesson\w*|read|reading|book\w*|stud\w*|lecture|learn\w*|language|"
        r"podcast|museum|library|school|college|workshop",
        "learning",
    ),
)
_AREA_PATTERNS = tuple((re.compile(rf"\b(?:{words})\b"), area) for words, area in AREA_KEYWORDS)

# Where a text divides into requests: sentences, and clauses between commas and dashes.
_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]+|\s[-–—]+\s")
_AND = " and "


def normalise(text: str) -> str:
    """Lower case; accents and apostrophes dropped; punctuation and emoji to spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    cleaned = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = re.sub(r"['‘’`´]", "", cleaned)
    cleaned = re.sub(r"[^\w\s]|_", " ", cleaned)
    cleaned = re.sub(r"([^\W\d])\1{2,}", r"\1\1", cleaned)  # "stooop" -> "stoop"
    return " ".join(cleaned.split())


def infer_area(note: str | None) -> str | None:
    """The activity area a DONE note is about, or None when no keyword says."""
    if not note:
        return None
    for pattern, area in _AREA_PATTERNS:
        if pattern.search(note):
            return area
    return None


def _intent(row: Row, match: re.Match[str]) -> Intent:
    groups = match.groupdict()
    medium = row.medium
    word = groups.get("medium") or groups.get("verb")
    if word:
        medium = medium_of(word) or medium
    days = None
    if groups.get("days"):
        raw = groups["days"]
        days = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
        if (groups.get("unit") or "").startswith("w"):
            days *= 7
    note = groups.get("note")
    return Intent(
        row.command,
        medium=medium,
        days=days,
        note=note,
        area=infer_area(note),
        language=row.language,
        mutual=row.mutual,
        place=groups.get("place"),
    )


def _match(words: str, rows: tuple[Row, ...] = GRAMMAR) -> Intent | None:
    for row in rows:
        match = row.pattern.fullmatch(words)
        if match:
            return _intent(row, match)
    return None


def _corrected(words: str) -> Intent | None:
    if " " in words or len(words) < 2 or words in NEVER_CORRECTED or words.isdigit():
        return None
    close = difflib.get_close_matches(words, FUZZY_WORDS, n=2, cutoff=FUZZY_CUTOFF)
    if not close:
        return None
    if len(close) == 2:
        ratios = [difflib.SequenceMatcher(None, words, c).ratio() for c in close]
        if ratios[0] == ratios[1] and FUZZY_WORDS[close[0]] != FUZZY_WORDS[close[1]]:
            return None  # two commands equally close: do not guess
    return Intent(FUZZY_WORDS[close[0]])


_STOP_ROWS = tuple(row for row in GRAMMAR if row.command == Command.STOP)


def _opt_out_within(text: str) -> Intent | None:
    """A stop request that is one clause of a longer text, or clauses joined by "and".

    "Thanks for everything. Please stop." and "stop texting me, I want to die" stop;
    so does "please stop texting me and leave me alone", where every part asks it.
    A clause only counts whole: "he won't stop, it's driving me mad" does not.
    """
    for clause in _CLAUSE_BREAK.split(text):
        words = normalise(clause)
        if not words:
            continue
        found = _match(words, _STOP_ROWS)
        if found is not None:
            return found
        parts = words.split(_AND)
        if len(parts) > 1:
            each = [_match(part, _STOP_ROWS) for part in parts]
            if all(each):
                return each[0]
    return None


def interpret(text: str) -> Intent:
    """The intent of a whole text (see the module docstring for the rules)."""
    words = normalise(text)
    intent = _match(words) or _corrected(words)
    if intent is not None:
        return intent
    return _opt_out_within(text) or Intent(Command.UNKNOWN)


def parse(text: str) -> Command:
    """The command a text means."""
    return interpret(text).command
