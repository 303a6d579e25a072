"""GSM-7 normalisation of typography, and segment counts as carriers bill them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.messages.content import normalise_gsm
from service.messages.segments import count_segments

# --- GSM-7 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("it’s ‘fine’", "it's 'fine'"),
        ("“quoted”", '"quoted"'),
        ("wait – then — go", "wait - then - go"),
        ("later…", "later..."),
        ("a\u00a0b", "a b"),
        ("façade", "facade"),  # lowercase ç is not GSM-7
        ("café €5 {ok}", "café €5 {ok}"),  # é, € and braces are GSM-7 (€ and { via escape)
        ("ok 🙂", "ok "),  # nothing to transliterate to: dropped
        ("a\x1bb", "ab"),  # a stray escape would garble the next character
    ],
)
def test_normalise_gsm_maps_typography_and_transliterates(raw: str, expected: str) -> None:
    assert normalise_gsm(raw) == expected


TYPOGRAPHY = st.sampled_from("‘’“”–—…\u00a0\t\x1bçøŁ€{}[]~^|\\éñß🙂中")


@given(st.text(alphabet=st.one_of(st.characters(), TYPOGRAPHY)))
def test_normalise_gsm_output_is_gsm7_and_idempotent(text: str) -> None:
    once = normalise_gsm(text)
    once.encode("gsm03.38")
    assert normalise_gsm(once) == once


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets: each € is escape + code
        ("€" * 81, 2),
        ("a" * 159 + "{", 2),  # 161 septets
        ("a" * 158 + "^", 1),
        ("ç" * 70, 1),  # not GSM-7, so UCS-2
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("🙂" * 35, 1),  # two UTF-16 code units each
        ("🙂" * 36, 2),
    ],
)
def test_sms_segments_counts_gsm7_septets_and_ucs2_units(text: str, segments: int) -> None:
    assert count_segments(text) == segments
