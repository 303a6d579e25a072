"""How many SMS segments a text takes: what carriers count and Twilio bills.

One counter for all of Steady (the rate limiter, the daily cap, `steady capacity`,
the template checks and the sandbox's `NumSegments`). The GSM 03.38 alphabet is
the `gsm0338` codec's, not a table of ours: a text the codec encodes goes as
GSM-7, counted in septets (a character of the extension table, such as `€`, `{`
or `~`, is an escape plus a septet: two); anything else goes as UCS-2, counted in
UTF-16 code units (an emoji outside the Basic Multilingual Plane is two).

A single message holds 160 septets or 70 units. A longer one is split into parts
that each give room to the concatenation header (a 6-byte UDH), leaving 153
septets or 67 units per part. A part never ends in the middle of a character:
an escape sequence and a surrogate pair stay whole, so a part may hold one unit
less than its room (3GPP TS 23.040 §9.2.3.24.1; Twilio's segment calculator does
the same). Parts are therefore filled character by character, not by dividing.
"""

from __future__ import annotations

from functools import lru_cache

import gsm0338  # noqa: F401 - importing it registers the "gsm03.38" codec

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67
# ESC introduces an extension-table character; on its own it is not text.
_GSM_ESCAPE = "\x1b"
_GSM_CODEC = "gsm03.38"


def gsm7_septets(char: str) -> int:
    """Septets one character takes in GSM-7: 1, 2 (extension table) or 0 (not GSM-7)."""
    if char == _GSM_ESCAPE:
        return 0
    try:
        return len(char.encode(_GSM_CODEC))
    except UnicodeError:
        return 0


def is_gsm7(text: str) -> bool:
    """Whether the whole text goes out in the GSM-7 alphabet."""
    return all(_septets(char) for char in text)


def _ucs2_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


@lru_cache(maxsize=4096)
def _septets(char: str) -> int:
    return gsm7_septets(char)


def _parts(widths: list[int], single: int, part: int) -> int:
    total = sum(widths)
    if total <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > part:  # this character starts the next part, whole
            parts, used = parts + 1, 0
        used += width
    return parts


@lru_cache(maxsize=8192)
def count_segments(text: str) -> int:
    """Segments `text` takes on the wire; an empty text is one (it still goes as a message).

    Cached: Steady's bodies come from a few dozen templates, and the dispatcher
    counts every one it sends.
    """
    septets = [_septets(char) for char in text]
    if all(septets):
        return _parts(septets, GSM7_SINGLE, GSM7_PART)
    return _parts([_ucs2_units(char) for char in text], UCS2_SINGLE, UCS2_PART)


def encoding(text: str) -> str:
    """`GSM-7` or `UCS-2`: how the text goes out."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"
