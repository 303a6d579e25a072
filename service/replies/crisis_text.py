"""Normalisation of a subscriber's text into canonical tokens, for the crisis table and model.

The same steps run on the table's rows and on texts (see ``service.replies.crisis``):
curly quotes, emoji and punctuation; contractions; stretched letters; the table's word
sections (slang, misspellings, Spanish, word forms) and fillers; spelling correction
towards the table's own words (``rapidfuzz``); dictionary forms (``simplemma``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

import simplemma
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein
from unidecode import unidecode

SENTENCE_BREAK = "."  # the token a sentence end becomes


def word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_APOSTROPHE_LIKE = str.maketrans(dict.fromkeys("’‘ʼ′`´＇‛", "'"))
# Laughing faces (and the skull, "I'm dead" as laughter) keep their meaning as a word.
_LAUGHTER = re.compile("[😂🤣😆😹😅💀☠]")
# Emoji that stand for a thing of danger read as that word ("i cut again 🩸" -> "blood");
# other emoji are spaces. Round 3 (tuning18): phone-native writers put the means in emoji.
_EMOJI_WORDS = {
    "🔪": "knife",
    "🗡": "knife",
    "🔫": "gun",
    "💊": "pills",
    "🪦": "grave",
    "⚰": "coffin",
    "🩸": "blood",
    "🪢": "rope",
    "🪒": "razor",
    "💉": "needle",
    "🩹": "bandage",
    "💔": "heartbroken",
    "🫥": "empty",
}
_EMOJI = re.compile("|".join(_EMOJI_WORDS))
# Punctuation spoken aloud to voice-to-text ("he is outside period i can see him") ends a
# sentence; "period" only where no determiner makes it a noun ("my period", "a period of").
_SPOKEN_PUNCTUATION = re.compile(
    r"\b(?:question mark|exclamation (?:point|mark)|full stop|new (?:line|paragraph)|"
    r"(?<!\bmy )(?<!\ba )(?<!\bthe )(?<!\bthis )(?<!\bthat )(?<!\bher )(?<!\bgrace )"
    r"(?<!\btrial )(?<!\bwaiting )(?<!\bcooling )(?<!\bof )period(?! of\b))\b"
)
_SPOKEN_COMMA = re.compile(r"\bcomma\b")
# Letters spaced out ("k i l l   m y s e l f"): single letters joined, words split where
# the gap is wider.
_SPACED = re.compile(r"(?<![a-z0-9])[a-z](?: {1,4}[a-z]){2,}(?![a-z0-9])")
# Digits written for letters inside a word ("s3lf h4rm", "d0n3 w1th l1f3"); a number with
# a unit ("3am", "20mg", "2nd") is not one.
_LEET = str.maketrans("01345789", "oieasgtg")
_UNIT = re.compile(
    r"\d+(?:st|nd|rd|th|am|pm|s|k|x|h|hr|hrs|m|min|mins|mm|mg|ml|kg|lb|lbs|yo|y|ft|mph|g|gb)"
)
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
        (r"\bod'd\b", "overdosed"),  # not "odd"
        (r"\b(i|you|he|she|it|we|they|who|that|there)'d\b", r"\1 would"),
        (
            r"\b(he|she|it|that|there|what|who|where|here|how|when|why|nothing|everything|life)'s\b",
            r"\1 is",
        ),
        (r"'s\b", ""),  # possessive: "my ex's car" -> "my ex car"
        (r"'", ""),
    )
)
# "ill", "hell", "shell" stand for "I'll", "he'll", "she'll" where a clause starts with
# them or a verb follows; otherwise they are the words they look like ("I feel ill").
_CLAUSE_OPENERS = word_set(
    "and but so then or because cuz cause if when think swear guess promise know maybe "
    "probably lol honestly that now"
)
_FUTURE_VERBS = word_set(
    "kill hurt find come never be do take get make shoot stab show know try go see end "
    "jump die probably definitely prob just not"
)
_WILL_FORMS = {"ill": "i", "hell": "he", "shell": "she"}
_STRETCH = re.compile(r"(\w)\1{2,}")
_MIN_FUZZY_LENGTH = 4  # "pils" -> "pills"; shorter words are too easily another word
_MIN_FUZZY_TARGET = 5  # only longer table words are targets ("gun" is one edit from "fun")
_SUFFIXES = ("ing", "ed", "es", "s", "d")


def _is_known(word: str) -> bool:
    return bool(simplemma.is_known(word, lang="en"))


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    return str(simplemma.lemmatize(word, lang="en")).lower()


def _unspace(match: re.Match[str]) -> str:
    return " ".join(word.replace(" ", "") for word in re.split(r" {2,}", match.group()))


def _spoken(text: str) -> str:
    """Voice-to-text's spoken punctuation and spaced-out letters, read as written."""
    text = _SPOKEN_COMMA.sub(" ", _SPOKEN_PUNCTUATION.sub(".", text))
    return _SPACED.sub(_unspace, text)


def _ascii_words(text: str) -> str:
    text = _LAUGHTER.sub(" lol ", text.translate(_APOSTROPHE_LIKE))
    text = _EMOJI.sub(lambda match: f" {_EMOJI_WORDS[match.group()]} ", text)
    if text.isascii():
        return _spoken(text.lower())
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
    return _spoken("".join(chars).lower())


class Normaliser:
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
            words = [self._unleet(self._unstretch(w)) for w in re.findall(r"[a-z0-9]+", sentence)]
            words = self._expand_will(words)
            mapped = [w for w in self._map(words) if w not in self._fillers]
            if mapped:
                if tokens:
                    tokens.append(SENTENCE_BREAK)
                tokens.extend(mapped)
        return tokens

    def canonical(self, text: str, *, correct: bool = True) -> list[str]:
        """All steps: the tokens the table's rows are matched against."""
        return self.canonical_tokens(self.surface(text), correct=correct)

    def canonical_tokens(self, surface: list[str], *, correct: bool = True) -> list[str]:
        """Steps 5-6 on the words ``surface`` gave: spelling, then dictionary forms."""
        tokens: list[str] = []
        for word in surface:
            if word == SENTENCE_BREAK:
                tokens.append(word)
                continue
            fixed = self.correct(word) if correct else word
            # A corrected word may itself be in the word map ("cuttin" -> "cutting" -> "cut").
            mapped = self._words.get((fixed,), (fixed,)) if fixed != word else (word,)
            tokens += [lemma(t) for t in mapped]
        return tokens

    def _unstretch(self, word: str) -> str:
        if not _STRETCH.search(word):
            return word
        double, single = _STRETCH.sub(r"\1\1", word), _STRETCH.sub(r"\1", word)
        for candidate in (double, single):
            if (candidate,) in self._words or _is_known(candidate):
                return candidate
        return double

    def _unleet(self, word: str) -> str:
        if word.isalpha() or word.isdigit() or _UNIT.fullmatch(word) or (word,) in self._words:
            return word  # "b4" and "no1" are in the table's slang as they are
        plain = word.translate(_LEET)
        if plain.isalpha() and ((plain,) in self._words or _is_known(plain)):
            return plain
        return word

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
