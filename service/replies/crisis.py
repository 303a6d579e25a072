"""Words of crisis or danger in a subscriber's text (PRODUCT.md "Safety"), read from a table.

What counts as danger is not in this code: it is ``crisis_table.txt`` beside this module,
written so that a clinician can read and change it. Each category of danger there is a
list of rows ("{PARTNER} {AUX} {HARM} me", "no one would miss me", ...); a text is in
danger of a category when a row of it matches. The table's own header explains its syntax.

Both the text and the table go through the same normalisation, so a row is written once
in plain English and still matches the many ways people write it:

1. Curly quotes become straight; laughing emoji become "lol"; other emoji and punctuation
   become spaces; accented letters lose their accents (``unidecode``); sentence ends
   (. ! ? ; new line) are kept as a "." token so a row never runs across two sentences.
2. Contractions are expanded, with or without the apostrophe ("can't", "cant" -> "can not";
   "ill do it" -> "i will do it" where "ill" starts a clause).
3. Stretched letters are cut back to a known word ("sooooo" -> "so", "killl" -> "kill").
4. The table's [contractions], [slang], [misspellings] and [word forms] sections map words
   ("kms" -> "kill myself", "rn" -> "right now", "overdoes" -> "overdose"); its [fillers]
   ("really", "just", "literally") are dropped.
5. A word no dictionary knows is corrected to the nearest word of the table, one edit away
   (two for long words): "suicde", "restraning", "theratened" (``rapidfuzz``).
6. Every word is reduced to its dictionary form (``simplemma``): "killed", "killing" ->
   "kill"; "me" -> "i"; "was" -> "be".

Then the table's guards blank out figurative and negated spans ("hit me up", "killed it",
"not suicidal"), and the rows of each category are tried on what is left. A guard hides
only its own words, so "this traffic is killing me and I want to die" still alarms.

Leaning towards flagging is deliberate: a false alarm costs a pause in nudges until an
operator looks; a miss costs far more. The text is never logged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

import simplemma
import structlog
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from unidecode import unidecode

log = structlog.get_logger(__name__)

TABLE_PATH = Path(__file__).with_name("crisis_table.txt")


class Danger(StrEnum):
    SUICIDE = "suicide"  # suicidal thoughts
    SELF_HARM = "self_harm"  # self-harm and means (pills saved up, a rope, a gun for myself...)
    HOPELESSNESS = "hopelessness"  # hopelessness and being a burden, without a keyword
    VIOLENCE = "violence"  # violence or threats from a partner
    STALKING = "stalking"  # stalking and immediate danger (at the door right now, following me)


LINE_KIND: dict[Danger, Literal["crisis", "violence"]] = {
    Danger.SUICIDE: "crisis",
    Danger.SELF_HARM: "crisis",
    Danger.HOPELESSNESS: "crisis",
    Danger.VIOLENCE: "violence",
    Danger.STALKING: "violence",
}


@dataclass(frozen=True)
class Assessment:
    """The kinds of danger found in one text (none: not a crisis)."""

    dangers: frozenset[Danger]

    @property
    def is_crisis(self) -> bool:
        return bool(self.dangers)

    @property
    def line_kinds(self) -> frozenset[str]:
        """Which safety lines answer this text: "crisis" and/or "violence"."""
        return frozenset(LINE_KIND[danger] for danger in self.dangers)


# --- normalisation ------------------------------------------------------------------------

SENTENCE_BREAK = "."  # the token a sentence end becomes


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_APOSTROPHE_LIKE = str.maketrans(dict.fromkeys("’‘ʼ′`´＇‛", "'"))
# Laughing faces (and the skull, "I'm dead" as laughter) keep their meaning as a word.
_LAUGHTER = re.compile("[😂🤣😆😹😅💀☠]")
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_CONTRACTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\bcan't\b", "can not"),
        (r"\bwon't\b", "will not"),
        (r"\bain't\b", "is not"),
        (r"n't\b", " not"),
        (r"'m\b", " am"),
        (r"'re\b", " are"),
        (r"'ve\b", " have"),
        (r"'ll\b", " will"),
        (r"\bod'?d\b", "overdosed"),
        (r"\b(i|you|he|she|it|we|they|who|that|there)'d\b", r"\1 would"),
        (r"\b(he|she|it|that|there|what|who|where|here|how|when|why)'s\b", r"\1 is"),
        (r"'s\b", ""),  # possessive: "my ex's car" -> "my ex car"
        (r"'", ""),
    )
)
# "ill", "hell", "shell" stand for "I'll", "he'll", "she'll" where a clause starts with
# them or a verb follows; otherwise they are the words they look like ("I feel ill").
_CLAUSE_OPENERS = _word_set(
    "and but so then or because cuz cause if when think swear guess promise know maybe "
    "probably lol honestly that now"
)
_FUTURE_VERBS = _word_set(
    "kill hurt find come never be do take get make shoot stab show know try go see end "
    "jump die probably definitely prob just not"
)
_WILL_FORMS = {"ill": "i", "hell": "he", "shell": "she"}
_STRETCH = re.compile(r"(\w)\1{2,}")
_MIN_FUZZY_LENGTH = 4  # "pils" -> "pills"; shorter words are too easily another word
_MIN_FUZZY_TARGET = 5  # only longer table words are targets ("gun" is one edit from "fun")
_SUFFIXES = ("ing", "ed", "es", "s", "d")
_GAP = r"(?:[a-z0-9~]+ ){0,3}"  # "...": up to three words, never across a sentence end
_REPEAT = 3  # a [slot NAME: repeat] slot stands for up to this many of its words


def _is_known(word: str) -> bool:
    return bool(simplemma.is_known(word, lang="en"))


@lru_cache(maxsize=65536)
def _lemma(word: str) -> str:
    return str(simplemma.lemmatize(word, lang="en")).lower()


def _ascii_words(text: str) -> str:
    text = _LAUGHTER.sub(" lol ", text.translate(_APOSTROPHE_LIKE))
    if text.isascii():
        return text.lower()
    chars = []
    for char in text:
        if char.isascii():
            chars.append(char)
        elif unicodedata.category(char)[0] in "LN":
            chars.append(unidecode(char))
        elif char in "\n\u2028\u2029":
            chars.append("\n")
        else:  # emoji, symbols, punctuation outside ASCII
            chars.append(" ")
    return "".join(chars).lower()


class _Normaliser:
    """Text -> canonical tokens; the same steps for the table's rows and for texts."""

    def __init__(self, words: dict[tuple[str, ...], tuple[str, ...]], fillers: frozenset[str]):
        self._words = words
        self._longest = max((len(key) for key in words), default=1)
        self._phrase_starts = frozenset(key[0] for key in words if len(key) > 1)
        self._fillers = fillers
        self._vocabulary: dict[int, list[str]] = {}  # by length
        self.correct: Callable[[str], str] = lru_cache(maxsize=16384)(self._correct)

    def learn(self, words: Iterable[str]) -> None:
        """Words of the table, the targets of spelling correction."""
        by_length: dict[int, set[str]] = {}
        for word in [*words, *(w for ws in self._vocabulary.values() for w in ws)]:
            if len(word) >= _MIN_FUZZY_TARGET and word.isalpha():
                by_length.setdefault(len(word), set()).add(word)
        self._vocabulary = {size: sorted(ws) for size, ws in by_length.items()}

    def surface(self, text: str) -> list[str]:
        """Steps 1-4: words as written, expanded and mapped, before spelling and lemmas."""
        tokens: list[str] = []
        for sentence in _SENTENCE_END.split(_ascii_words(text)):
            for pattern, replacement in _CONTRACTIONS:
                sentence = pattern.sub(replacement, sentence)
            words = [self._unstretch(w) for w in re.findall(r"[a-z0-9]+", sentence)]
            words = self._expand_will(words)
            mapped = [w for w in self._map(words) if w not in self._fillers]
            if mapped:
                if tokens:
                    tokens.append(SENTENCE_BREAK)
                tokens.extend(mapped)
        return tokens

    def canonical(self, text: str, *, correct: bool = True) -> list[str]:
        """All steps: the tokens the table's rows are matched against."""
        tokens: list[str] = []
        for word in self.surface(text):
            if word == SENTENCE_BREAK:
                tokens.append(word)
                continue
            fixed = self.correct(word) if correct else word
            # A corrected word may itself be in the word map ("cuttin" -> "cutting" -> "cut").
            mapped = self._words.get((fixed,), (fixed,)) if fixed != word else (word,)
            tokens += [_lemma(t) for t in mapped]
        return tokens

    def _unstretch(self, word: str) -> str:
        if not _STRETCH.search(word):
            return word
        double, single = _STRETCH.sub(r"\1\1", word), _STRETCH.sub(r"\1", word)
        for candidate in (double, single):
            if (candidate,) in self._words or _is_known(candidate):
                return candidate
        return double

    @staticmethod
    def _expand_will(words: list[str]) -> list[str]:
        out: list[str] = []
        for i, word in enumerate(words):
            subject = _WILL_FORMS.get(word)
            following = words[i + 1] if i + 1 < len(words) else ""
            opens = i == 0 or words[i - 1] in _CLAUSE_OPENERS
            if subject and (following in _FUTURE_VERBS or (word == "ill" and opens and following)):
                out += [subject, "will"]
            else:
                out.append(word)
        return out

    def _map(self, words: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(words):
            longest = self._longest if words[i] in self._phrase_starts else 1
            for size in range(min(longest, len(words) - i), 0, -1):
                replacement = self._words.get(tuple(words[i : i + size]))
                if replacement is not None:
                    out.extend(replacement)
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def _correct(self, word: str) -> str:
        if len(word) < _MIN_FUZZY_LENGTH or not word.isalpha() or _is_known(word):
            return word
        if word.endswith("in") and _is_known(word + "g"):  # "killin", "followin"
            return word + "g"
        stems = [word] + [word[: -len(s)] for s in _SUFFIXES if word.endswith(s)]
        for stem in stems:
            if len(stem) < _MIN_FUZZY_LENGTH:
                continue
            limit = 1 if len(stem) < 8 else 2
            near = [
                w
                for size in range(len(stem) - limit, len(stem) + limit + 1)
                for w in self._vocabulary.get(size, ())
            ]
            best = process.extractOne(
                stem, near, scorer=DamerauLevenshtein.distance, score_cutoff=limit
            )
            if best is not None:
                return str(best[0])
        return word


# --- the table's row syntax ---------------------------------------------------------------

_ROW_SYNTAX = re.compile(r"\{[A-Z_]+\}|\.\.\.|[()\[\]|$]|[^\s()\[\]|{}$]+")


# Words too common to tell rows apart; a row is looked up by its rarer words.
_COMMON = _word_set(
    "i you he she they it we be have do a an the to of and my in on for with not will would "
    "that this go get at so up out can no what there"
)


@dataclass(frozen=True)
class _Part:
    """A compiled piece of a row: its regex over "tok tok tok " and the words it needs."""

    regex: str
    # For each set, some word of it must be in the text for the part to match: a cheap
    # check before the regex runs.
    needs: tuple[frozenset[str], ...]
    may_be_empty: bool


def _rarest(needs: tuple[frozenset[str], ...]) -> frozenset[str] | None:
    """The required set whose words are the least common in texts."""
    return min(needs, key=lambda s: (len(s & _COMMON) > 0, len(s)), default=None)


def _sequence(parts: list[_Part]) -> _Part:
    return _Part(
        "".join(p.regex for p in parts),
        tuple(n for p in parts for n in p.needs),
        all(p.may_be_empty for p in parts),
    )


def _alternatives(options: list[_Part]) -> _Part:
    if len(options) == 1:
        return options[0]
    union: set[str] = set()
    for option in options:
        best = _rarest(option.needs)
        if best is None:
            union.clear()
            break
        union |= best
    regex = "(?:" + "|".join(o.regex for o in options) + ")"
    needs = (frozenset(union),) if union else ()
    return _Part(regex, needs, any(o.may_be_empty for o in options))


class _RowCompiler:
    def __init__(self, normaliser: _Normaliser) -> None:
        self.normaliser = normaliser
        self.slots: dict[str, _Part] = {}
        self.vocabulary: set[str] = set()

    def compile(self, row: str) -> _Part:
        items = _ROW_SYNTAX.findall(row)
        part, end = self._options(items, 0)
        if end != len(items):
            raise ValueError(f"crisis table: unbalanced brackets in row {row!r}")
        return part

    def compile_row(self, row: str) -> _Part:
        part = self.compile(row)
        if part.may_be_empty:
            raise ValueError(f"crisis table: row {row!r} can match nothing at all")
        return part

    def literal(self, phrase: str) -> _Part:
        """An operator's phrase: its words in order, no syntax."""
        surface = self.normaliser.surface(phrase)
        tokens = [t if t == SENTENCE_BREAK else _lemma(t) for t in surface]
        needs = tuple(frozenset({t}) for t in tokens)
        return _Part("".join(re.escape(t) + " " for t in tokens), needs, False)

    def _options(self, items: list[str], i: int) -> tuple[_Part, int]:
        options: list[_Part] = []
        while True:
            start = i
            part, i = self._sequence(items, i)
            if i == start:
                raise ValueError(f"crisis table: empty choice in {' '.join(items)!r}")
            options.append(part)
            if i < len(items) and items[i] == "|":
                i += 1
                continue
            return _alternatives(options), i

    def _sequence(self, items: list[str], i: int) -> tuple[_Part, int]:
        parts: list[_Part] = []
        words: list[str] = []
        while i < len(items) and items[i] not in ("|", ")", "]"):
            item = items[i]
            if item in ("(", "[") or item.startswith("{") or item in ("...", "$"):
                parts.extend(self._words(words))
                words = []
            if item in ("(", "["):
                inner, i = self._options(items, i + 1)
                closing = ")" if item == "(" else "]"
                if i >= len(items) or items[i] != closing:
                    raise ValueError(f"crisis table: expected {closing!r} in {' '.join(items)}")
                if item == "[":
                    inner = _Part(f"(?:{inner.regex})?", (), True)
                parts.append(inner)
            elif item.startswith("{"):
                parts.append(self._slot(item[1:-1]))
            elif item == "...":
                parts.append(_Part(_GAP, (), True))
            elif item == "$":  # the end of a sentence
                parts.append(_Part(r"(?=\. |$)", (), True))
            elif re.fullmatch(r"[A-Za-z0-9'*-]+", item):
                words.append(item)
            else:
                raise ValueError(f"crisis table: {item!r} is not a word or syntax")
            i += 1
        parts.extend(self._words(words))
        return _sequence(parts), i

    def _words(self, words: list[str]) -> list[_Part]:
        parts: list[_Part] = []
        plain: list[str] = []
        for word in [*words, ""]:
            if word.endswith("*") or not word:
                surface = self.normaliser.surface(" ".join(plain))
                self.vocabulary.update(surface)
                parts += [_Part(re.escape(_lemma(t)) + " ", (frozenset({_lemma(t)}),), False)
                          for t in surface]  # fmt: skip
                plain = []
                if word:  # "suicid*": any word that starts so
                    parts.append(_Part(re.escape(word[:-1].lower()) + r"[a-z0-9]* ", (), False))
            else:
                plain.append(word)
        return parts

    def _slot(self, name: str) -> _Part:
        if name == "NUMBER":  # a number of two digits or more: "took 30 pills"
            return _Part(r"\d\d+ ", (), False)
        try:
            return self.slots[name]
        except KeyError:
            raise ValueError(f"crisis table: unknown slot {{{name}}}") from None


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    pattern: re.Pattern[str]
    needs: tuple[frozenset[str], ...]
    dangers: frozenset[Danger]


class _RowSet:
    """Rows looked up by their rarest required word: a text tries only rows it could match."""

    def __init__(self, rows: Iterable[_Row]) -> None:
        self.rows = tuple(rows)
        self._always: list[int] = []
        self._by_word: dict[str, list[int]] = {}
        for i, row in enumerate(self.rows):
            key = _rarest(row.needs)
            if key is None:
                self._always.append(i)
            for word in key or ():
                self._by_word.setdefault(word, []).append(i)

    def candidates(self, present: frozenset[str]) -> list[_Row]:
        ids = set(self._always)
        for word in present:
            ids.update(self._by_word.get(word, ()))
        rows = (self.rows[i] for i in sorted(ids))
        return [r for r in rows if all(not need.isdisjoint(present) for need in r.needs)]


def _row(part: _Part, dangers: frozenset[Danger]) -> _Row:
    # Rows start at a word: the rendered text is " tok tok tok ".
    return _Row(re.compile("(?<= )" + part.regex), part.needs, dangers)


def _sections(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(section header, line) pairs; "#" starts a comment, blank lines are skipped."""
    header, out = "", []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]") and "=" not in line:
            header = line[1:-1].strip().lower()
        elif line:
            out.append((header, line))
    return out


def _dangers(names: str) -> frozenset[Danger] | None:
    try:
        return frozenset(Danger(n.strip()) for n in names.split(","))
    except ValueError:
        return None


@dataclass(frozen=True)
class _Table:
    compiler: _RowCompiler
    guards: _RowSet
    rows: tuple[_Row, ...]


_WORD_SECTIONS = ("contractions", "slang", "misspellings", "word forms")


def _build(lines: Iterable[str]) -> _Table:
    entries = _sections(lines)
    words: dict[tuple[str, ...], tuple[str, ...]] = {}
    fillers: set[str] = set()
    for header, line in entries:
        if header in _WORD_SECTIONS:
            written, _, meant = line.partition("=")
            words[tuple(written.split())] = tuple(meant.split())
        elif header == "fillers":
            fillers.update(line.split())
    normaliser = _Normaliser(words, frozenset(fillers))
    compiler = _RowCompiler(normaliser)
    slot_options: dict[str, list[_Part]] = {}
    guards: list[_Row] = []
    rows: list[_Row] = []
    everything = frozenset(Danger)
    for header, line in entries:
        if header.startswith("slot "):
            name, _, mode = header[5:].partition(":")
            slot_options.setdefault(name.strip().upper(), []).append(compiler.compile(line))
            options = _alternatives(slot_options[name.strip().upper()])
            repeat = mode.strip() == "repeat"
            compiler.slots[name.strip().upper()] = (
                _Part(f"(?:{options.regex}){{0,{_REPEAT}}}", (), True) if repeat else options
            )
        elif header == "guards" or header.startswith("guards:"):
            only = _dangers(header.partition(":")[2]) if ":" in header else everything
            if only is None:
                raise ValueError(f"crisis table: unknown category in [{header}]")
            guards.append(_row(compiler.compile_row(line), only))
        elif (dangers := _dangers(header)) is not None:
            rows.append(_row(compiler.compile_row(line), dangers))
        elif header not in (*_WORD_SECTIONS, "fillers"):
            raise ValueError(f"crisis table: unknown section [{header}]")
    normaliser.learn(compiler.vocabulary)
    return _Table(compiler, _RowSet(guards), tuple(rows))


@cache
def _builtin_table() -> _Table:
    """The table, compiled once per process (every detector shares it)."""
    return _build(TABLE_PATH.read_text(encoding="utf-8").splitlines())


def read_extra_phrases(path: Path | None) -> tuple[str, ...]:
    """The operator's extra phrases file, as lines; an unreadable file is logged, not fatal.

    Failing the inbound webhook over a missing file would drop every reply, STOPs
    included; the built-in table still applies meanwhile.
    """
    if path is None:
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        log.error("crisis_words_file_unreadable", path=str(path), error=reason)
        return ()
    # Phrases and "[category]" lines, in order; comments and blank lines dropped.
    kept = (raw.split("#", 1)[0].strip() for raw in lines)
    return tuple(line for line in kept if line)


class CrisisDetector:
    """Tells whether, and which kinds of, crisis or danger a text speaks of."""

    def __init__(self, extra_phrases: Iterable[str] = ()) -> None:
        """Extra phrases count as suicide unless a "[violence]"-style line says otherwise.

        Each phrase is matched word by word after the same normalisation as a text (so
        "can't go on" also matches "cant go on"). A line "[stalking]" (any category name,
        or several joined by commas) applies to the phrases after it.
        """
        self._table = _builtin_table()
        dangers = frozenset({Danger.SUICIDE})
        extra: list[_Row] = []
        for phrase in extra_phrases:
            phrase = phrase.strip()
            if phrase.startswith("[") and phrase.endswith("]"):
                named = _dangers(phrase[1:-1])
                if named is None:
                    log.warning("crisis_words_unknown_category", category=phrase[1:-1][:40])
                dangers = named or frozenset({Danger.SUICIDE})
                continue
            part = self._table.compiler.literal(phrase)
            if part.regex:
                extra.append(_row(part, dangers))
        self._rows = _RowSet(self._table.rows + tuple(extra))

    @classmethod
    def from_file(cls, path: Path | None) -> CrisisDetector:
        return cls(read_extra_phrases(path))

    def assess(self, text: str) -> Assessment:
        tokens = self._table.compiler.normaliser.canonical(text)
        present = frozenset(tokens)
        rendered = " " + " ".join(tokens) + " "
        blanked = _blank(rendered, self._table.guards.candidates(present))
        found: set[Danger] = set()
        for row in self._rows.candidates(present):
            for danger in row.dangers - found:
                if row.pattern.search(blanked.get(danger, rendered)):
                    found.add(danger)
        return Assessment(frozenset(found))

    def found_in(self, text: str) -> bool:
        return self.assess(text).is_crisis


def _blank(rendered: str, guards: list[_Row]) -> dict[Danger, str]:
    """For each category, the text with its guards' spans hidden ("~" per word)."""
    spans: list[tuple[int, int, frozenset[Danger]]] = []
    for guard in guards:
        spans += [(m.start(), m.end(), guard.dangers) for m in guard.pattern.finditer(rendered)]
    if not spans:
        return {}
    out: dict[Danger, str] = {}
    for danger in Danger:
        chars = list(rendered)
        for start, end, dangers in spans:
            if danger in dangers:
                for k in range(start, end):
                    if chars[k] != " ":
                        chars[k] = "~"
        out[danger] = re.sub("~+", "~", "".join(chars))
    return out
