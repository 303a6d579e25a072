"""A stand-in with the API of the new crisis detector, over today's phrase list.

The table-driven detector (issue 10, point 1) replaces ``service.replies.crisis``
with ``CrisisDetector.assess(text) -> Assessment``. Until it lands, this module gives
``service.replies.inbound`` the same API over ``CrisisWords``, so switching is one
import in inbound.py, after which this module is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from service.replies.crisis import BUILTIN_CRISIS_PATTERNS, read_phrases_file
from service.replies.grammar import normalise


class Danger(StrEnum):
    SUICIDE = "suicide"
    SELF_HARM = "self_harm"
    HOPELESSNESS = "hopelessness"
    VIOLENCE = "violence"
    STALKING = "stalking"


LINE_KIND: dict[Danger, Literal["crisis", "violence"]] = {
    Danger.SUICIDE: "crisis",
    Danger.SELF_HARM: "crisis",
    Danger.HOPELESSNESS: "crisis",
    Danger.VIOLENCE: "violence",
    Danger.STALKING: "violence",
}


@dataclass(frozen=True)
class Assessment:
    dangers: frozenset[Danger]

    @property
    def is_crisis(self) -> bool:
        return bool(self.dangers)

    @property
    def line_kinds(self) -> frozenset[str]:
        return frozenset(LINE_KIND[danger] for danger in self.dangers)


def _words(patterns: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = [p for p in patterns if p]
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b") if alternatives else None


class CrisisDetector:
    def __init__(self, extra_phrases: Iterable[str] = ()) -> None:
        self_harm, *violence = BUILTIN_CRISIS_PATTERNS
        extra = [re.escape(normalise(phrase)) for phrase in extra_phrases]
        self._self_harm = _words([self_harm, *extra])
        self._violence = _words(violence)

    @classmethod
    def from_file(cls, path: Path | None) -> CrisisDetector:
        return cls(read_phrases_file(path))

    def assess(self, text: str) -> Assessment:
        words = normalise(text)
        found: set[Danger] = set()
        if self._self_harm is not None and self._self_harm.search(words):
            found.add(Danger.SUICIDE)
        if self._violence is not None and self._violence.search(words):
            found.add(Danger.VIOLENCE)
        return Assessment(frozenset(found))

    def found_in(self, text: str) -> bool:
        return self.assess(text).is_crisis
