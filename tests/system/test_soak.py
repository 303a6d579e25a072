"""Soak: dispatch a backlog on PostgreSQL with and without a long REPEATABLE READ
snapshot held open by another connection (a long report on the primary), and print the
dispatch rate of each, early and late, with the dead rows and the claim's cost.

What bounds it: every claimed row leaves a dead version behind in the claim's partial
index (status = 'scheduled'). Without an old snapshot the first scan that meets a dead
entry marks it, and later claims skip it; with one, no entry may be marked or vacuumed,
so each claim walks past every row sent so far (heap fetch by heap fetch) and the
claim's cost grows with the backlog already sent. docs/operators.md ("Growth") has the
figures; `STEADY_DATABASE_REPLICA_URL` keeps long reads off the primary.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from service.addresses import AddressHasher
from service.people.importer import import_subscribers
from service.storage.db import get_engine, session_factory
from tests.support.world import Harness, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.postgres]

MESSAGES = 20_000
BATCH = 200
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # noon in New York: welcomes go at once


def seed(url: str) -> None:
    """MESSAGES active subscribers (consent evidence), planned: one welcome each."""
    rows = "".join(
        f"+1212{200 + i // 10000:03d}{i % 10000:04d},,America/New_York,soak\n"
        for i in range(MESSAGES)
    )
    report = import_subscribers(
        session_factory(url),
        io.StringIO("phone,email,timezone,consent_evidence\n" + rows),
        hasher=AddressHasher("soak-secret-key-0123456789abcdef0123"),
        default_timezone="America/New_York",
        cadence_per_week=7,
        now=NOW,
        source="soak.csv",
    )
    assert report.active == MESSAGES, report


@contextmanager
def old_snapshot(url: str) -> Iterator[None]:
    """Another connection in REPEATABLE READ that has read once: its snapshot stays."""
    with get_engine(url).connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        connection.execute(text("SELECT count(*) FROM messages")).scalar()
        yield
        connection.rollback()


CLAIM = (
    "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM messages WHERE status = 'scheduled' "
    "AND scheduled_for <= :now ORDER BY priority, scheduled_for, id LIMIT 200 "
    "FOR UPDATE SKIP LOCKED"
)


def claim_buffers(url: str) -> int:
    """Buffers an empty claim reads once everything is sent. The second of two: the
    first marks the index entries of rows dead to everyone, if it may."""
    with get_engine(url).connect() as connection:
        for _ in range(2):
            plan = [row[0] for row in connection.execute(text(CLAIM), {"now": NOW})]
            connection.rollback()
    total = 0
    for line in plan:
        if "Buffers:" in line:
            total = max(total, sum(int(n) for n in re.findall(r"=(\d+)", line)))
    return total


def dead_rows(url: str) -> tuple[int, int]:
    """Dead row versions in `messages`, and its size in 8 kB pages, indexes included."""
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT pg_stat_force_next_flush()"))
        dead = connection.execute(
            text("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'")
        ).scalar()
        pages = connection.execute(
            text("SELECT pg_total_relation_size('messages') / 8192")
        ).scalar()
        connection.rollback()
    return int(dead or 0), int(pages or 0)


def fresh(url: str) -> None:
    """Empty tables, seeded and analysed: both cases start alike."""
    with get_engine(url).connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(
            text(
                "TRUNCATE messages, delivery_events, channels, subscribers RESTART IDENTITY CASCADE"
            )
        )
    seed(url)
    with get_engine(url).connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def dispatch_all(url: str) -> dict[str, float]:
    harness = Harness(make_settings(url, STEADY_DISPATCH_BATCH_SIZE=str(BATCH)))
    harness.runtime.plan(NOW)
    dispatcher = harness.runtime.dispatcher
    durations: list[float] = []
    while True:
        started = time.perf_counter()
        sent = len(dispatcher.run_batch(NOW))
        durations.append(time.perf_counter() - started)
        if sent < BATCH:
            break
    fifth = max(len(durations) // 5, 1)
    return {
        "sent": len(harness.sms.sent),
        "rate": len(harness.sms.sent) / sum(durations),
        "first_fifth": fifth * BATCH / sum(durations[:fifth]),
        "last_fifth": fifth * BATCH / sum(durations[-fifth - 1 : -1] or durations[-1:]),
        "claim_buffers": claim_buffers(url),
        "dead_rows": dead_rows(url)[0],
        "pages": dead_rows(url)[1],
    }


def test_dispatch_rate_with_and_without_a_long_snapshot(postgres_url: str) -> None:
    figures = {}
    for case in ("no snapshot", "REPEATABLE READ held"):
        fresh(postgres_url)
        if case == "no snapshot":
            figures[case] = dispatch_all(postgres_url)
        else:
            with old_snapshot(postgres_url):
                figures[case] = dispatch_all(postgres_url)
    print(f"\nsoak: {MESSAGES} messages, claims of {BATCH}, outbox provider, PostgreSQL")
    for case, values in figures.items():
        print(
            f"  {case:22} {values['rate']:6.0f} msg/s overall (first fifth "
            f"{values['first_fifth']:.0f}/s, last fifth {values['last_fifth']:.0f}/s); "
            f"after: {values['dead_rows']:.0f} dead rows, table and indexes "
            f"{values['pages']:.0f} pages, an empty claim reads "
            f"{values['claim_buffers']:.0f} buffers"
        )
    for values in figures.values():
        assert values["sent"] == MESSAGES
    # A measurement, not a pass mark: both figures depend on the machine's load.
