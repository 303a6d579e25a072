"""The one SMS segment counter: GSM-7 septets vs UCS-2 units, single vs concatenated parts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.messages.segments import count_segments, encoding, gsm7_septets, is_gsm7


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),  # GSM-7 single message: 160 septets
        ("a" * 161, 2),  # one more: two parts of up to 153
        ("a" * 306, 2),  # 153 × 2
        ("a" * 307, 3),
        ("a" * 459, 3),  # 153 × 3
        ("a" * 460, 4),
        ("{" * 80, 1),  # extension characters take two septets: 160
        ("{" * 81, 2),
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 158 + "€", 1),  # 160
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("ç" * 70, 1),  # ç is not (only Ç is): UCS-2, 70 units
        ("ç" * 71, 2),
        ("ç" * 134, 2),  # 67 × 2
        ("ç" * 135, 3),
        ("a" * 69 + "✨", 1),  # one non-GSM character turns the whole text UCS-2
        ("a" * 70 + "✨", 2),
        ("🙂" * 35, 1),  # an emoji outside the BMP is a surrogate pair: two units
        ("🙂" * 36, 2),
    ],
)
def test_segments_follow_the_gsm7_and_ucs2_limits(text: str, segments: int) -> None:
    assert count_segments(text) == segments


def test_a_part_never_splits_an_escape_sequence_or_a_surrogate_pair() -> None:
    # 152 septets then "€" (2): dividing would say 155/153 → 2 parts of 153, but the
    # escape sequence cannot straddle the boundary, so part one ends at 152 and the
    # last septets spill: 152 + (2 + 152) = 306 septets fit only in three parts.
    text = "a" * 152 + "€" + "a" * 152
    assert sum(gsm7_septets(c) for c in text) == 306
    assert count_segments(text) == 3
    # Same for UCS-2: 66 units, then an emoji (2) that cannot be split across parts.
    emoji_text = "ç" * 66 + "🙂" + "ç" * 66
    assert count_segments(emoji_text) == 3


def test_the_gsm7_alphabet_comes_from_the_codec() -> None:
    assert gsm7_septets("a") == 1
    assert gsm7_septets("€") == 2
    assert gsm7_septets("\f") == 2  # form feed is in the extension table
    assert gsm7_septets("ç") == 0
    assert gsm7_septets("\x1b") == 0  # a lone escape is not text
    assert is_gsm7("Steady: 10 min walk? Reply DONE.")
    assert not is_gsm7("Steady ✨")
    assert encoding("hello") == "GSM-7"
    assert encoding("привет") == "UCS-2"


@given(st.text(alphabet="abcXYZ019 .,!?", max_size=800))
def test_plain_gsm7_text_counts_as_the_division_says(text: str) -> None:
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert count_segments(text) == expected


@given(st.text(max_size=400))
def test_more_text_never_takes_fewer_segments(text: str) -> None:
    assert count_segments(text + "a") >= count_segments(text)
