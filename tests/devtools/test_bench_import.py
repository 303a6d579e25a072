"""The bench's import phase: its file is what it claims, and run alone it imports
exactly the file's valid rows through the real command, naming every bad one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.devtools.bench.import_file import write_import_file
from service.people.import_rows import RowError, read_header, validate_chunk
from tests.devtools.test_bench import run_json


def test_the_bench_file_has_the_bad_rows_and_distinct_addresses_it_promises(
    tmp_path: Path,
) -> None:
    expected = write_import_file(tmp_path / "import.csv", 3000)
    with expected.path.open(newline="") as handle:
        reader = read_header(handle)
        results = validate_chunk([(reader.line_num, row) for row in reader], "America/New_York")

    bad = tuple((line, r.field) for line, r in results if isinstance(r, RowError))
    assert bad == expected.bad_fields
    assert {field for _, field in bad} == {"phone", "email", "timezone", "row"}
    valid = [r for _, r in results if not isinstance(r, RowError)]
    assert len(valid) == expected.rows - expected.bad
    addresses = [a for r in valid for a in (r.phone, r.email) if a is not None]
    assert len(set(addresses)) == expected.channels, "distinct, but for the repeated rows"
    assert len(addresses) > expected.channels > expected.imported > 0
    phones = [r.phone for r in valid if r.phone is not None]
    assert sum(p.startswith("+1") for p in phones) > len(phones) / 3, "US-first"
    assert len({p[:3] for p in phones if not p.startswith("+1")}) >= 6, "other countries"
    assert sum(r.timezone_candidates is not None for r in valid) > 0, "split area codes"
    assert 0 < expected.active < expected.pending


@pytest.mark.slow
@pytest.mark.postgres
def test_the_import_phase_alone_imports_every_valid_row_of_several_chunks() -> None:
    rows = 4500  # three validation chunks: the helper process takes part
    result = run_json(sys.executable, "-m", "service.devtools.bench.importing", "--rows", str(rows))

    check = result["check"]
    assert check["exit_code"] == 1, "some rows were bad"
    assert check["bad_rows_named"] == result["bad"] > 0
    assert check["added"] == check["expected"]
    assert result["imported"] == result["valid"] - result["repeated"]
    assert check["added"]["subscribers"] > result["imported"], "phone + email: two people"
    assert check["ok"]
    assert result["summary"].startswith(f"{rows} rows: {result['imported']} imported")
    assert result["cpu_us_per_row"]["importer"] > 0
    assert result["cpu_us_per_row"]["helpers"] > 0
