"""Reading an import file: its header, and each row checked as a signup would be.

Rows are validated in file order; helper processes validate ahead (parsing numbers
is most of an import's CPU) while the importer writes (service.people.importer).
"""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

from service.addresses import InvalidAddress, check_timezone, normalise_email, parse_mobile
from service.people.zones.numbers import ZoneGuess, guess_for_mobile, guess_for_number

VALIDATE_CHUNK_ROWS = 2000  # rows per hand-over to a validating helper process
# Until a helper has started (imports: a second on a busy machine), the importer
# validates the next chunks itself rather than wait.
VALIDATE_HERE_UNTIL_HELPERS_START = True
IMPORT_COLUMNS = ("phone", "email", "timezone")
OPTIONAL_IMPORT_COLUMNS = ("consent_evidence",)


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no header, wrong columns)."""


@dataclass(frozen=True)
class RowError:
    """One rejected row: its line in the file, the field at fault and why."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class ValidRow(NamedTuple):
    """A row fit to import, as the importer writes it: no objects beyond its strings
    (helpers send thousands a second; see `_validate_in_helper`)."""

    phone: str | None
    email: str | None
    timezone: str
    timezone_candidates: str | None  # ZoneGuess.stored_candidates
    evidence: str | None


def validate_row(
    row: dict[str, str | None], line: int, default_timezone: str, now: datetime
) -> ValidRow:
    """Normalise one CSV row or raise `InvalidAddress` naming the field at fault."""
    values = {key: (value or "").strip() for key, value in row.items() if key is not None}
    if not any(values.values()):
        raise InvalidAddress("row", "empty row")
    if not values.get("phone") and not values.get("email"):
        raise InvalidAddress("row", "neither phone nor email given")
    mobile = parse_mobile(values["phone"]) if values.get("phone") else None
    email = normalise_email(values["email"]) if values.get("email") else None
    if values.get("timezone"):
        zone = ZoneGuess(check_timezone(values["timezone"]))
    elif mobile is not None:
        zone = guess_for_mobile(mobile, default_timezone, now)
    else:
        zone = guess_for_number(None, default_timezone, now)
    return ValidRow(
        mobile.e164 if mobile is not None else None,
        email,
        zone.timezone,
        zone.stored_candidates,
        values.get("consent_evidence") or None,
    )


def count_data_lines(path: str) -> int:
    """Lines after the header, counted without holding the file (for the progress bar)."""
    with open(path, "rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def read_header(handle: IO[str]) -> csv.DictReader[str]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in IMPORT_COLUMNS if name not in header]
    unknown = [n for n in header if n not in (*IMPORT_COLUMNS, *OPTIONAL_IMPORT_COLUMNS)]
    if not header or missing or unknown:
        raise ImportFileError(
            "the first line must be the header phone,email,timezone[,consent_evidence]"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    reader.fieldnames = header
    return reader


def validate_chunk(
    chunk: list[tuple[int, dict[str | None, Any]]], default_timezone: str
) -> list[tuple[int, ValidRow | RowError]]:
    """Validate rows (with their line numbers); runs in a helper process for big files."""
    results: list[tuple[int, ValidRow | RowError]] = []
    now = datetime.now(UTC)  # which candidate zones keep distinct clocks (guess_for_number)
    for line, raw in chunk:
        if None in raw:  # DictReader puts surplus cells under the key None
            results.append((line, RowError(line, "row", "more cells than the header has columns")))
            continue
        try:
            results.append((line, validate_row(raw, line, default_timezone, now)))  # type: ignore[arg-type]
        except InvalidAddress as exc:
            results.append((line, RowError(line, exc.field, exc.message)))
    return results


def _chunks(reader: csv.DictReader[str]) -> Iterator[list[tuple[int, dict[str | None, Any]]]]:
    chunk: list[tuple[int, dict[str | None, Any]]] = []
    for raw in reader:
        chunk.append((reader.line_num, raw))
        if len(chunk) >= VALIDATE_CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def validated_rows(
    reader: csv.DictReader[str], default_timezone: str, workers: int
) -> Iterator[tuple[int, ValidRow | RowError]]:
    """Every row validated, in file order. Past the first chunk, helper processes
    validate ahead (parsing numbers is most of an import's CPU) while this one writes;
    until the first of them has started (a second of imports), this one validates."""
    chunks = _chunks(reader)
    first = next(chunks, None)
    if first is None:
        return
    yield from validate_chunk(first, default_timezone)
    if workers <= 0:
        for chunk in chunks:
            yield from validate_chunk(chunk, default_timezone)
        return
    # spawn, not fork: a forked child would share this process's database sockets.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        started = pool.submit(_helper_started)
        ahead: deque[Future[list[tuple[int, tuple[Any, ...] | RowError]]]] = deque()
        for chunk in chunks:
            if VALIDATE_HERE_UNTIL_HELPERS_START and not ahead and not started.done():
                yield from validate_chunk(chunk, default_timezone)
                continue
            ahead.append(pool.submit(_validate_in_helper, chunk, default_timezone))
            if len(ahead) > 2 * workers:  # bounded: memory stays flat
                yield from _received(ahead.popleft().result())
        while ahead:
            yield from _received(ahead.popleft().result())


def _helper_started() -> None:
    """Returns in a helper once it has imported this module (its unpickling did that)."""


def _validate_in_helper(
    chunk: list[tuple[int, dict[str | None, Any]]], default_timezone: str
) -> list[tuple[int, tuple[Any, ...] | RowError]]:
    """`validate_chunk`, its valid rows as plain tuples: the importer unpickles a tuple
    in 0.4 µs, a named tuple or dataclass in 5 to 10 (it calls the class's Python code)."""
    return [
        (line, tuple(result) if isinstance(result, ValidRow) else result)
        for line, result in validate_chunk(chunk, default_timezone)
    ]


def _received(
    results: list[tuple[int, tuple[Any, ...] | RowError]],
) -> Iterator[tuple[int, ValidRow | RowError]]:
    for line, result in results:
        yield line, result if isinstance(result, RowError) else ValidRow._make(result)


def default_workers() -> int:
    """Helper processes for validation: the cores left beside this one (at most 3)."""
    return max(0, min(3, (os.cpu_count() or 1) - 1))
