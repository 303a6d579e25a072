"""What `/metrics` and `/admin/api/stats` cost as the messages table grows (issue 11).

    python -m service.devtools.bench.figures [--sizes 10000,100000,1000000]

A scratch PostgreSQL database (as `steady bench` makes one; dropped afterwards)
gets 1,000 subscribers, then messages (and a delivery event for every second
one) added in bulk up to each size; the triggers keep the tallies as they go.
At each size both endpoints are requested `--requests` times in process and the
median time printed, beside the time of the GROUP BY over `messages` they ran
before the tallies, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from service.devtools.bench.scratch import scratch_database
from service.reporting import tallies
from service.settings import load_settings
from service.storage.db import get_engine
from service.web.app import create_app

PEOPLE = 1000
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"  # noqa: S105 - a throwaway app's token

ADD_PEOPLE = (
    text(
        """
    INSERT INTO subscribers (id, created_at, timezone, cadence_per_week, hour_start, hour_end,
                             activity_areas, discreet, welcomed)
    SELECT g, now(), 'America/New_York', 7, 8, 20, '', false, true
    FROM generate_series(1, CAST(:people AS bigint)) AS g
    """
    ),
    text(
        """
    INSERT INTO channels (id, subscriber_id, kind, address, address_key, status, created_at,
                          updated_at, confirmed_at)
    SELECT g, g, 'sms', '+1212555' || lpad(g::text, 4, '0'), '+1212555' || lpad(g::text, 4, '0'),
           'active', now(), now(), now()
    FROM generate_series(1, CAST(:people AS bigint)) AS g
    """
    ),
)
ADD_MESSAGES = text(
    """
    INSERT INTO messages (subscriber_id, channel_id, channel, kind, template, rule, priority,
                          status, scheduled_for, attempts, sent_at, created_at, updated_at)
    SELECT 1 + g % CAST(:people AS bigint), 1 + g % CAST(:people AS bigint), 'sms',
           (ARRAY['restraint', 'tip', 'activity', 'patience'])[1 + g % 4], 'bench', 'bench', 1,
           (ARRAY['delivered', 'delivered', 'sent', 'failed', 'expired', 'cancelled'])[1 + g % 6],
           now() - interval '40 days', 1, now() - interval '40 days',
           now() - interval '40 days', now() - interval '40 days'
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    """
)
ADD_EVENTS = text(
    """
    INSERT INTO delivery_events (provider, event_key, event_type, received_at, payload)
    SELECT 'twilio', 'bench-' || g, 'delivered', now(), '{}'::json
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
    """
)
OLD_GROUP_BY = text("SELECT kind, channel, status, count(*) FROM messages GROUP BY 1, 2, 3")


@dataclass(frozen=True)
class Timing:
    median: float
    fastest: float  # the least disturbed by other load on a shared machine
    sql: float | None = None  # median time inside SQL statements per request

    def __str__(self) -> str:
        inside = "" if self.sql is None else f"; sql {self.sql * 1000:.1f}"
        return f"{self.median * 1000:.1f} ({self.fastest * 1000:.1f}{inside})"


class SqlClock:
    """Time spent inside SQL statements on one engine (cursor execute to return)."""

    def __init__(self, engine: Engine) -> None:
        self.total = 0.0
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.total += time.perf_counter() - self._started


def timed(call: Callable[[], object], requests: int, sql: SqlClock | None = None) -> Timing:
    times, in_sql = [], []
    for _ in range(requests):
        sql_before = sql.total if sql else 0.0
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        in_sql.append((sql.total if sql else 0.0) - sql_before)
    return Timing(statistics.median(times), min(times), statistics.median(in_sql) if sql else None)


def run(sizes: list[int], requests: int) -> list[tuple[int, Timing, Timing, Timing]]:
    rows = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        scratch_database(None, Path(workdir)) as url,
    ):
        if not url.startswith("postgresql"):
            raise SystemExit("figures: needs PostgreSQL (the bench's scratch server)")
        engine = get_engine(url)
        with engine.begin() as connection:
            for statement in ADD_PEOPLE:
                connection.execute(statement, {"people": PEOPLE})
        settings = load_settings(
            STEADY_DATABASE_URL=url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN, _env_file=None
        )
        client = TestClient(create_app(settings))
        sql = SqlClock(engine)
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        have = 0
        for size in sorted(sizes):
            with engine.begin() as connection:
                bounds = {"first": have + 1, "last": size, "people": PEOPLE}
                connection.execute(ADD_MESSAGES, bounds)
                connection.execute(ADD_EVENTS, {"first": have // 2 + 1, "last": size // 2})
            have = size
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
            with Session(engine) as session, session.begin():
                tallies.fold(session)  # as the planner's next pass would
            metrics = timed(lambda: client.get("/metrics"), requests, sql)
            stats = timed(lambda: client.get("/admin/api/stats", headers=bearer), requests, sql)
            with engine.connect() as connection:
                old = timed(lambda: connection.execute(OLD_GROUP_BY).all(), 5)
            rows.append((size, metrics, stats, old))
        client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print("milliseconds: median (fastest; median time inside SQL) of the requests")
    header = ("messages", "/metrics", "/admin/api/stats", "old GROUP BY")
    print(f"{header[0]:>10} {header[1]:>26} {header[2]:>26} {header[3]:>24}")
    for size, metrics, stats, old in run(sizes, args.requests):
        print(f"{size:>10,} {metrics!s:>26} {stats!s:>26} {old!s:>24}")


if __name__ == "__main__":
    main()
