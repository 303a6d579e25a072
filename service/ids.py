"""Row ids as they arrive from outside: in a URL, a query string, a provider's event.

Both databases store ids as signed 64-bit integers. A bigger number, a sign, or
digits that are not ASCII (`"²"`, `"١٢٣"`, which `str.isdigit` accepts) name no
row of ours and must be refused before they reach SQL, where they would overflow
(issue 11: a 4xx or "unknown", never a 5xx).
"""

from __future__ import annotations

import re

MAX_ROW_ID = 2**63 - 1
ROW_ID_PATTERN = re.compile(r"[0-9]{1,19}")


def parse_row_id(text: object) -> int | None:
    """An id from untrusted input: ASCII digits within 64 bits, else None."""
    if not isinstance(text, str | int) or isinstance(text, bool):
        return None
    digits = str(text)
    if not ROW_ID_PATTERN.fullmatch(digits):
        return None
    value = int(digits)
    return value if 0 < value <= MAX_ROW_ID else None
