"""The crisis table's syntax and its compiled rows (``crisis_table.txt``; see its header).

A row such as ``{PARTNER} {AUX} {HARM} me`` compiles to a regular expression over the
canonical tokens of ``crisis_text`` ("tok tok tok "); rows are looked up by their rarest
required word, so a text only tries the rows it could match. Categories are plain names
here ("suicide", "violence"...): ``service.replies.crisis`` turns them into ``Danger``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from service.replies.crisis_text import SENTENCE_BREAK, Normaliser, lemma, word_set

_GAP = r"(?:[a-z0-9~]+ ){0,3}"  # "...": up to three words, never across a sentence end
_REPEAT = 3  # a [slot NAME: repeat] slot stands for up to this many of its words

# --- the table's row syntax ---------------------------------------------------------------

_ROW_SYNTAX = re.compile(r"\{[A-Z_]+\}|\.\.\.|[()\[\]|$]|[^\s()\[\]|{}$]+")


# Words too common to tell rows apart; a row is looked up by its rarer words.
_COMMON = word_set(
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


class RowCompiler:
    def __init__(self, normaliser: Normaliser) -> None:
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
        tokens = [t if t == SENTENCE_BREAK else lemma(t) for t in surface]
        needs = tuple(frozenset({t}) for t in tokens)
        return _Part("".join(re.escape(t) + " " for t in tokens), needs, False)

    def _options(self, items: list[str], i: int) -> tuple[_Part, int]:
        options: list[_Part] = []
        while True:
            start = i
            part, i = self._sequence(items, i)
            if i == start:
                raise ValueError(f"crisis table: empty choice in {' '.join(items)!r}")
            if not part.regex:  # its words are all [fillers]: the choice would match nothing
                raise ValueError(f"crisis table: a choice of filler words in {' '.join(items)!r}")
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
                parts += [_Part(re.escape(lemma(t)) + " ", (frozenset({lemma(t)}),), False)
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


WEAK_MARK = "?"  # a row that starts with it is weak: a mention rather than a statement


@dataclass(frozen=True)
class Row:
    pattern: re.Pattern[str]
    needs: tuple[frozenset[str], ...]
    dangers: frozenset[str]
    source: str = ""  # the row as written in the table (for reports; never a text)
    weak: bool = False  # written "? row": alarms only when the model agrees (see crisis.py)


class RowSet:
    """Rows looked up by their rarest required word: a text tries only rows it could match."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows = tuple(rows)
        self._always: list[int] = []
        self._by_word: dict[str, list[int]] = {}
        for i, row in enumerate(self.rows):
            key = _rarest(row.needs)
            if key is None:
                self._always.append(i)
            for word in key or ():
                self._by_word.setdefault(word, []).append(i)

    def candidates(self, present: frozenset[str]) -> list[Row]:
        ids = set(self._always)
        for word in present:
            ids.update(self._by_word.get(word, ()))
        rows = (self.rows[i] for i in sorted(ids))
        return [r for r in rows if all(not need.isdisjoint(present) for need in r.needs)]


def make_row(part: _Part, dangers: frozenset[str], source: str = "", weak: bool = False) -> Row:
    # Rows start at a word: the rendered text is " tok tok tok ".
    return Row(re.compile("(?<= )" + part.regex), part.needs, dangers, source, weak)


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


def parse_categories(names: str, categories: frozenset[str]) -> frozenset[str] | None:
    """ "suicide, self_harm" -> those names; None if any of them is not a category."""
    named = frozenset(n.strip() for n in names.split(","))
    return named if named <= categories else None


@dataclass(frozen=True)
class Table:
    compiler: RowCompiler
    guards: RowSet
    rows: tuple[Row, ...]


_WORD_SECTIONS = (
    "contractions",
    "slang",
    "misspellings",
    "spanish",
    "french",
    "portuguese",
    "italian",
    "word forms",
)


def build_table(lines: Iterable[str], categories: frozenset[str]) -> Table:
    """Compile the table's lines; a category section must name one of ``categories``."""
    entries = _sections(lines)
    words: dict[tuple[str, ...], tuple[str, ...]] = {}
    fillers: set[str] = set()
    for header, line in entries:
        if header in _WORD_SECTIONS:
            written, _, meant = line.partition("=")
            words[tuple(written.split())] = tuple(meant.split())
        elif header == "fillers":
            fillers.update(line.split())
    normaliser = Normaliser(words, frozenset(fillers))
    compiler = RowCompiler(normaliser)
    slot_options: dict[str, list[_Part]] = {}
    guards: list[Row] = []
    rows: list[Row] = []
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
            only = (
                parse_categories(header.partition(":")[2], categories)
                if ":" in header
                else categories
            )
            if only is None:
                raise ValueError(f"crisis table: unknown category in [{header}]")
            guards.append(make_row(compiler.compile_row(line), only, line))
        elif (dangers := parse_categories(header, categories)) is not None:
            weak = line.startswith(WEAK_MARK)
            row = line.removeprefix(WEAK_MARK).strip()
            rows.append(make_row(compiler.compile_row(row), dangers, row, weak))
        elif header not in (*_WORD_SECTIONS, "fillers"):
            raise ValueError(f"crisis table: unknown section [{header}]")
    normaliser.learn(compiler.vocabulary)
    return Table(compiler, RowSet(guards), tuple(rows))


def blank(rendered: str, guards: list[Row], categories: Iterable[str]) -> dict[str, str]:
    """For each category, the text with its guards' spans hidden ("~" per word).

    Empty when no guard matches: then every category reads the text as it is.
    """
    spans = [
        (m.start(), m.end(), guard.dangers)
        for guard in guards
        for m in guard.pattern.finditer(rendered)
    ]
    if not spans:
        return {}
    return {c: _hide(rendered, [(a, b) for a, b, ds in spans if c in ds]) for c in categories}


def blank_general(rendered: str, guards: list[Row], categories: frozenset[str]) -> str:
    """The text with the spans of the guards for every category hidden (figurative, negated)."""
    spans = [
        (m.start(), m.end())
        for guard in guards
        if guard.dangers >= categories
        for m in guard.pattern.finditer(rendered)
    ]
    return _hide(rendered, spans)


def _hide(rendered: str, spans: list[tuple[int, int]]) -> str:
    chars = list(rendered)
    for start, end in spans:
        for k in range(start, end):
            if chars[k] != " ":
                chars[k] = "~"
    return re.sub("~+", "~", "".join(chars))
