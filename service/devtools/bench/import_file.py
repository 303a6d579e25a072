"""A realistic file for the bench's import phase, and what importing it must leave.

An operator's list is mostly mobile numbers, in whatever format they were typed,
from more than one country; some people gave an email too and some only an email;
some rows name a time zone and some carry consent evidence; a few are bad and a
few repeat an earlier row. The file is the same for the same size (a seeded
random), and every address in it is distinct unless it repeats a row on purpose,
so the people, channels and confirmations the import must create are known
exactly beforehand (`ImportFile`).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

IMPORT_FILE_SEED = 13
BAD_ROW_EVERY = 97  # about 1 % of rows are bad, each kind in turn
REPEAT_ROW_EVERY = 211  # about 0.5 % repeat an earlier row: already known, skipped

# Mobile ranges `phonenumbers` accepts, as each country's people type them: six
# free digits each (`{d}`; `{d2}` in pairs, `{d3}` in threes).
MOBILE_FORMATS: tuple[str, ...] = (
    "+44 7400 {d}",  # GB
    "+33 6 12 {d2}",  # FR
    "+49 15123 {d}",  # DE
    "+61 412 {d3}",  # AU
    "+34 612 {d}",  # ES
    "+353 85 1{d}",  # IE
    "+52 222 1{d}",  # MX
    "+31 6 12 {d}",  # NL
)
# US and Canadian area codes, split ones (812, 850, 270) among them: their numbers
# may get several candidate zones.
NANP_AREAS = (212, 312, 415, 617, 713, 206, 305, 404, 512, 812, 850, 303, 602, 416, 604, 270)
NANP_FORMATS = ("({a}) {x}-{n}", "{a}-{x}-{n}", "+1 {a} {x} {n}", "1{a}{x}{n}", "{a}.{x}.{n}")
TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Paris",
    "Australia/Sydney",
)
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "example.org", "proton.me")
EVIDENCE = ("paper form 2026-01-05, ref {i}", "web form at the clinic, visit {i}")
# A bad row of each kind, in turn: (phone, email, timezone, evidence), and the field
# `steady subscribers import` names for it.
BAD_ROWS: tuple[tuple[tuple[str, str, str, str], str], ...] = (
    (("12ab", "", "", ""), "phone"),
    (("+44 20 7946 0{n3}", "", "", ""), "phone"),  # a London landline
    (("+1 200 555 0{n3}", "", "", ""), "phone"),  # no such area code
    (("", "someone{n3}@", "", ""), "email"),
    (("+33 6 12 34 5{n1} 00", "", "Mars/Olympus", ""), "timezone"),
    (("", "", "America/Chicago", ""), "row"),  # neither phone nor email
)


@dataclass(frozen=True)
class ImportFile:
    """A written import file and what importing it into an empty list must do."""

    path: Path
    rows: int
    bad: int
    repeated: int  # rows already seen earlier in the file: skipped
    imported: int  # rows that add someone
    subscribers: int  # people they add: a pending phone and email on one row are two
    channels: int  # channels those rows add
    active: int  # channels of rows with consent evidence: active at once
    pending: int  # channels waiting for a confirmation (one message each)
    bad_fields: tuple[tuple[int, str], ...]  # (line, field) of each bad row


def _phone(index: int, rng: random.Random) -> str:
    """A distinct mobile number for each index, typed as people type them: half of
    them US and Canadian (a US-first product), the rest spread over MOBILE_FORMATS."""
    kinds = 2 * len(MOBILE_FORMATS)
    kind, serial = index % kinds, index // kinds
    if kind >= len(MOBILE_FORMATS):
        serial = serial * len(MOBILE_FORMATS) + kind - len(MOBILE_FORMATS)
        area = NANP_AREAS[serial % len(NANP_AREAS)]
        rest = serial // len(NANP_AREAS)
        exchange, number = 200 + rest // 10_000, rest % 10_000
        return rng.choice(NANP_FORMATS).format(a=area, x=exchange, n=f"{number:04d}")
    digits = f"{serial:06d}"
    return MOBILE_FORMATS[kind].format(
        d=digits,
        d2=" ".join(digits[i : i + 2] for i in range(0, 6, 2)),
        d3=digits[:3] + " " + digits[3:],
    )


def _email(index: int, rng: random.Random) -> str:
    name = rng.choice(("alex", "sam", "jo", "maria", "li", "noor", "kim"))
    local = f"{name}{index}" if rng.random() < 0.8 else f"{name.title()}{index}+steady"
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def write_import_file(path: Path, rows: int, seed: int = IMPORT_FILE_SEED) -> ImportFile:
    """Write `rows` data rows (after the header) to `path`; what they must import."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable test file, not a secret
    bad_fields: list[tuple[int, str]] = []
    good: list[tuple[str, str, str, str]] = []
    repeated = imported = active = pending = two_pending = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("phone", "email", "timezone", "consent_evidence"))
        for index in range(rows):
            line = index + 2
            if index % BAD_ROW_EVERY == BAD_ROW_EVERY - 1:
                template, field = BAD_ROWS[(index // BAD_ROW_EVERY) % len(BAD_ROWS)]
                n = index % 1000
                writer.writerow(cell.format(n3=f"{n:03d}", n1=n % 10) for cell in template)
                bad_fields.append((line, field))
                continue
            if good and index % REPEAT_ROW_EVERY == REPEAT_ROW_EVERY - 1:
                writer.writerow(good[rng.randrange(len(good))])
                repeated += 1
                continue
            shape = rng.random()  # 55 % phone only, 30 % phone and email, 15 % email only
            phone = _phone(index, rng) if shape < 0.85 else ""
            email = _email(index, rng) if shape >= 0.55 else ""
            zone = rng.choice(TIMEZONES) if rng.random() < 0.3 else ""
            evidence = rng.choice(EVIDENCE).format(i=index) if rng.random() < 0.2 else ""
            row = (phone, email, zone, evidence)
            writer.writerow(row)
            good.append(row)
            count = bool(phone) + bool(email)
            imported += 1
            if evidence:
                active += count
            else:
                pending += count
                two_pending += count == 2
    return ImportFile(
        path=path,
        rows=rows,
        bad=len(bad_fields),
        repeated=repeated,
        imported=imported,
        subscribers=imported + two_pending,
        channels=active + pending,
        active=active,
        pending=pending,
        bad_fields=tuple(bad_fields),
    )
