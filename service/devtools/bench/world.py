"""The bench's world for one run: its database, processes and stand-in, and the
checks every phase shares (each message accepted once, nothing left behind)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.devtools.bench.scratch import Processes, RssSampler, children
from service.devtools.servers import wait_until
from service.settings import Settings
from service.storage.models import Message, MessageStatus

SEED_CHUNK = 10_000
STALL_SECONDS = 60.0  # no progress for this long: the phase has failed

Progress = Callable[[str], None]


class BenchWorld:
    """What the phases share: settings, sessions, processes, the stand-in, the backlog."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        processes: Processes,
        standin: str,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.processes = processes
        self.standin = standin
        self.progress = progress
        self.http = httpx.Client(timeout=10)
        self.worker_pid = 0
        self.backlog: list[int] = []  # the messages the planner made: every phase resends these

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = self.http.get(f"{self.standin}/counts").json()
        return counts

    def reset_standin(self) -> None:
        self.http.delete(f"{self.standin}/counts")

    def wait_accepted(
        self, expected: int, sampler: RssSampler | None = None, label: str = ""
    ) -> float:
        """Block until the stand-in accepted `expected` messages; returns when (monotonic)."""
        last, last_change = -1, time.monotonic()
        next_note = time.monotonic() + 10
        while True:
            accepted = int(self.counts()["accepted"])
            now = time.monotonic()
            if sampler is not None:
                sampler.sample()
            if accepted >= expected:
                return now
            if accepted != last:
                last, last_change = accepted, now
            elif now - last_change > STALL_SECONDS:
                raise RuntimeError(
                    f"bench: {label} stalled at {accepted:,}/{expected:,}\n"
                    + self.processes.log_tail("worker")
                    + self.processes.log_tail("naive")
                )
            if now >= next_note:
                self.progress(f"  {label}: {accepted:,}/{expected:,}")
                next_note = now + 10
            time.sleep(0.2)

    def settled_check(self, expected: int) -> dict[str, Any]:
        """The stand-in's log and the database agree: each message once, none left."""
        counts = self.counts()
        with self.sessions() as session:
            by_status = dict(
                session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
            )
            left = left_behind(session)
        return {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicates"],
            "left_behind": left,
            "db_status": by_status,
            "ok": counts["accepted"] == expected and counts["duplicates"] == 0 and left == 0,
        }

    def wait_db_settled(self, timeout: float = 30) -> None:
        def settled() -> bool:
            with self.sessions() as session:
                return left_behind(session) == 0

        wait_until(settled, timeout, "the last results to be recorded")


def left_behind(session: Session) -> int:
    """Rows that were due and are not settled (later nudges the planner made don't count)."""
    due_now = (Message.status == MessageStatus.SCHEDULED) & (
        Message.scheduled_for <= datetime.now(UTC)
    )
    return (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where((Message.status == MessageStatus.SENDING) | due_now)
        )
        or 0
    )


def pool_ready(parent: int, concurrency: int) -> bool:
    return len(children(parent)) >= concurrency


def chunks(values: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]
