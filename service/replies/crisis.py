"""Words of crisis or danger in a reply (PRODUCT.md "Safety").

A match flags the subscriber for an operator, stops their nudges and is answered
with the safety line. The built-in list is phrase-level, matched on whole words
of the normalised text (``service.replies.grammar.normalise``: apostrophes dropped, so
"don't" is written "dont" here). Phrases whose words are also everyday figures
of speech in a breakup ("it hit me", "this is killing me", "he hurt me") are
tied to a person hitting *me* ("he hit me") or left out. A false alarm costs a
pause in nudges until an operator looks; a missed one costs far more, so the
list leans towards flagging.

Operators add phrases in ``STEADY_CRISIS_WORDS_FILE``: one per line, blank lines
and ``#`` comments ignored, matched the same way (whole words, any case).
The matched text is never logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import structlog

from service.replies.grammar import normalise

log = structlog.get_logger(__name__)

# Someone else, in the subscriber's words: "he", "my ex", "my husband"...
_ACTOR = (
    r"(?:he|she|they|hes|shes|theyre|my ex|the ex|ex|my partner|partner|my husband|husband|"
    r"my wife|wife|my spouse|spouse|my boyfriend|boyfriend|my girlfriend|girlfriend|him|her)"
)
_AUX = (
    r"(?:(?:has|have|is|was|been|keeps|kept|just|has been|is going to|going to|gonna|will|"
    r"wants to|said he would|said she would|said they would|tried to|is trying to|again|"
    r"started|always|sometimes|still) )*"
)
_HARM_ME = (
    r"(?:hit|hits|hitting|beat|beats|beating|beat me up|punched|punches|slapped|slaps|"
    r"choked|chokes|choking|strangled|strangles|attacked|attacks|raped|kill|shot|stabbed) me"
)

BUILTIN_CRISIS_PATTERNS: tuple[str, ...] = (
    # Self-harm and suicide.
    r"suicide|suicidal|kill myself|killing myself|kms|end my life|ending my life|"
    r"end it all|ending it all|take my own life|take my life|want to die|wanna die|"
    r"wish i (?:was|were) dead|better off dead|hurt myself|hurting myself|harm myself|"
    r"harming myself|self harm|selfharm|cut myself|cutting myself|overdose|"
    r"no reason to live|dont want to live|do not want to live|dont want to be alive|"
    r"dont want to wake up|not worth living|no point (?:in )?living",
    # Violence and danger from someone else.
    rf"{_ACTOR} {_AUX}{_HARM_ME}",
    r"threat\w* to (?:kill|hurt)|threat\w* me|(?:going to|gonna|will) (?:hurt|kill) me|"
    r"afraid for my life|fear for my life|scared for my life|fearing for my life|"
    r"not safe|dont feel safe|do not feel safe|unsafe|in danger|abuse|abused|abusing|"
    r"abusive|abuser|domestic violence|violent|violence|sexually assaulted|assaulted me|"
    r"raped|rape|strangled|choked me|stalking me|stalker|restraining order|"
    r"protective order|protection order|gun|guns|weapon|with a knife|has a knife|"
    r"pulled a knife|kill the kids|hurt the kids|take the kids and|kidnap\w*",
)


def read_phrases_file(path: Path | None) -> tuple[str, ...]:
    """Extra phrases from the operator's file; an unreadable file is logged, not fatal.

    Failing the inbound webhook over a missing file would drop every reply,
    STOPs included; the built-in list still applies meanwhile.
    """
    if path is None:
        return ()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        log.error("crisis_words_file_unreadable", path=str(path), error=exc.strerror)
        return ()
    phrases = (line.split("#", 1)[0].strip() for line in lines)
    return tuple(p for p in (normalise(phrase) for phrase in phrases) if p)


class CrisisWords:
    """Tells whether a text carries words of crisis or danger."""

    def __init__(self, extra_phrases: Iterable[str] = ()) -> None:
        alternatives = [*BUILTIN_CRISIS_PATTERNS]
        alternatives += [re.escape(normalise(phrase)) for phrase in extra_phrases]
        alternatives = [a for a in alternatives if a]
        self._pattern = re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")

    @classmethod
    def from_file(cls, path: Path | None) -> CrisisWords:
        return cls(read_phrases_file(path))

    def found_in(self, text: str) -> bool:
        return self._pattern.search(normalise(text)) is not None
