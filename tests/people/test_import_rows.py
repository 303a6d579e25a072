"""Validating an import's rows: the zone a row gets is a signup's, and rows checked
in helper processes come back as the same rows, in file order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.addresses import normalise_phone
from service.devtools.bench.import_file import write_import_file
from service.people import import_rows
from service.people.import_rows import (
    RowError,
    ValidRow,
    read_header,
    validate_row,
    validated_rows,
)
from service.people.zones.numbers import guess_for_number
from tests.people.test_zones import SPLIT_AREA_CODES, number_in

NOW = datetime(2027, 1, 10, tzinfo=UTC)
DEFAULT = "America/New_York"


@pytest.mark.parametrize(
    "raw",
    [
        *(number_in(area, listed=listed) for area in SPLIT_AREA_CODES for listed in (True, False)),
        "(212) 555-0142",  # an unsplit US area code
        "+1 416 555 0142",  # Toronto
        "+61 412 345 678",  # an Australian mobile: every Australian zone
        "+44 7911 123456",
        "+353 85 123 4567",
        "+52 222 123 4567",  # a Mexican mobile, placed by its area
        "+55 11 96123-4567",
    ],
)
def test_an_imported_row_gets_the_zones_a_signup_with_its_number_would(raw: str) -> None:
    row = validate_row({"phone": raw, "email": "", "timezone": ""}, 2, DEFAULT, NOW)
    signup = guess_for_number(normalise_phone(raw), DEFAULT, NOW)
    assert (row.timezone, row.timezone_candidates) == (signup.timezone, signup.stored_candidates)


def test_rows_validated_in_helper_processes_are_the_rows_validated_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_rows, "VALIDATE_CHUNK_ROWS", 100)  # many chunks
    path = write_import_file(tmp_path / "people.csv", 3000).path

    def validated(workers: int) -> list[tuple[int, ValidRow | RowError]]:
        with path.open(newline="") as handle:
            return list(validated_rows(read_header(handle), DEFAULT, workers))

    here = validated(0)
    assert any(isinstance(result, RowError) for _, result in here)
    received: list[int] = []  # rows that came back from a helper, per chunk
    sent_back = import_rows._received

    def counted(results: list[tuple[int, Any]]) -> Iterator[tuple[int, ValidRow | RowError]]:
        received.append(len(results))
        return sent_back(results)

    monkeypatch.setattr(import_rows, "VALIDATE_HERE_UNTIL_HELPERS_START", False)
    monkeypatch.setattr(import_rows, "_received", counted)
    in_helpers = validated(1)

    assert sum(received) == 2900, "all but the first chunk went to the helper"
    assert [line for line, _ in in_helpers] == list(range(2, 3002)), "in file order"
    assert in_helpers == here
