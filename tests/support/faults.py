"""Helpers for the crash-safety tests (`tests/system/test_faults.py`).

Private servers the tests may break (a Redis and a PostgreSQL cluster of their
own, on free ports, so nothing shared is restarted or flushed), the real Steady
processes, seeding due nudges through the planner, and the one check every
scenario ends with: the sandbox's own log against the database, message by
message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from sqlalchemy import select, update

from service.channels import ChannelKind
from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import free_port, wait_until
from service.pacing.policy import pacing_policy
from service.pacing.window import midday_zone
from service.sending.planner import plan_due
from service.storage.db import session_factory
from service.storage.models import (
    Channel,
    ChannelStatus,
    Message,
    MessageStatus,
    Subscriber,
)
from tests.support.processes import steady_process_group
from tests.support.world import make_settings

REQUIRE_SERVERS = os.environ.get("STEADY_REQUIRE_SERVERS") == "1"

TWILIO_ACCOUNT_SID = "AC" + "f" * 32
TWILIO_TOKEN = "faults-auth-token"  # the sandbox accepts any token
TWILIO_FROM = "+15005550006"
SECRET_KEY = "faults-secret-key-0123456789abcdef0123456789"

# Generous: two cores shared with other test runs and engineers.
SETTLE_SECONDS = 120.0
POLL_SECONDS = 0.25
LOG_TAIL_LINES = 60

# A row in one of these states needs nothing more from anyone.
FINAL_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
        MessageStatus.EXPIRED,
        MessageStatus.CANCELLED,
    }
)
WENT_OUT_STATUSES = frozenset(
    {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}
)
# A nudge planned this far ahead (the next one, 3 hours after a send) is not part
# of the run: it is neither due nor lost.
LATER_NUDGE = timedelta(hours=1)


def require_server(message: str) -> None:
    """Skip, or fail under STEADY_REQUIRE_SERVERS=1 (as conftest does)."""
    if REQUIRE_SERVERS:
        pytest.fail(message + " (STEADY_REQUIRE_SERVERS=1: servers are required)", pytrace=False)
    pytest.skip(message)


def poll_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> None:
    """`wait_until` that says what it saw when it gives up."""
    try:
        wait_until(check, timeout, what, interval=POLL_SECONDS)
    except AssertionError as exc:
        if describe is None:
            raise
        raise AssertionError(f"{exc}; state: {describe()}") from None


# --- Steady's processes ----------------------------------------------------------------


def service_env(
    database_url: str, broker_url: str, sandbox_url: str, **overrides: str
) -> dict[str, str]:
    """What `steady worker` and `steady beat` run with in these tests."""
    env = {
        "STEADY_DATABASE_URL": database_url,
        "STEADY_BROKER_URL": broker_url,
        "STEADY_REDIS_URL": broker_url,
        # Nobody listens there: the sandbox's status callbacks are off anyway.
        "STEADY_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "STEADY_SECRET_KEY": SECRET_KEY,
        "STEADY_TICK_SECONDS": "0.5",
        "STEADY_SEND_SPREAD_MINUTES": "0",  # welcomes due at once, unspread
        "STEADY_SEND_LEASE_SECONDS": "5",
        "STEADY_DISPATCH_BATCH_SIZE": "4",
        "STEADY_PROVIDER_TIMEOUT_SECONDS": "2",
        # Settings other engineers are adding: reconciliation's settle delay, and no
        # SMS rate limit (its default of 1/s would stretch every scenario).
        "STEADY_RECONCILE_AFTER_SECONDS": "1",
        "STEADY_SMS_RATE_PER_SECOND": "0",
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "STEADY_TWILIO_API_URL": sandbox_url,
        "SENDGRID_API_KEY": "",
        "STEADY_CRASH_AT": "",
    }
    env.update(overrides)
    return env


class Services:
    """`steady worker` (prefork) and `steady beat`, real processes, logs under `logdir`.

    Stopped as whole process groups on the way out; if the block raised, the tails
    of every log are printed (pytest shows them with the failure).
    """

    def __init__(
        self,
        logdir: Path,
        env: dict[str, str],
        *,
        worker_env: dict[str, str] | None = None,
        concurrency: int = 2,
    ) -> None:
        self.logdir = logdir
        self.env = env
        self.worker_env = {**env, **(worker_env or {})}
        self.concurrency = concurrency
        self._stack = contextlib.ExitStack()
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.extra_logs: list[Path] = []

    def __enter__(self) -> Services:
        self.logdir.mkdir(parents=True, exist_ok=True)
        try:
            self.worker = self._stack.enter_context(
                steady_process_group(
                    ["worker", "--concurrency", str(self.concurrency)],
                    self.worker_env,
                    self.logdir / "worker.log",
                    cwd=self.logdir,
                )
            )
            self.beat = self._stack.enter_context(
                steady_process_group(
                    ["beat", "--schedule", str(self.logdir / "beat-schedule")],
                    self.env,
                    self.logdir / "beat.log",
                    cwd=self.logdir,
                )
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        if exc_type is not None:
            self.print_tails()

    def assert_alive(self) -> None:
        """The service recovered by itself: nobody restarted the worker or beat."""
        for name, process in (("worker", self.worker), ("beat", self.beat)):
            assert process is not None, f"steady {name} never started"
            assert process.poll() is None, (
                f"steady {name} exited ({process.returncode}); see {self.logdir / name}.log"
            )

    def log_text(self, name: str) -> str:
        return (self.logdir / name).read_text(errors="replace")

    def print_tails(self) -> None:
        for path in sorted(self.logdir.glob("*.log")) + self.extra_logs:
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            print(f"\n----- {path} (last {LOG_TAIL_LINES} of {len(lines)} lines) -----")
            print("\n".join(lines[-LOG_TAIL_LINES:]))


# --- seeding ---------------------------------------------------------------------------


def phone_numbers(group: int, count: int) -> list[str]:
    """Distinct, valid-looking US numbers; `group` keeps the groups of a test apart."""
    return [f"+1202{group:03d}{index:04d}" for index in range(count)]


def add_subscribers(database_url: str, phones: Iterable[str], *, due: bool) -> list[int]:
    """Confirmed SMS subscribers in a mid-day zone, due for planning now or not yet.

    The planner gives each one its welcome nudge, due at once: one message per
    recipient, so "no recipient twice" is the same as "no message twice".
    """
    now = datetime.now(UTC)
    zone = midday_zone(now)
    ids = []
    with session_factory(database_url)() as session:
        for phone in phones:
            subscriber = Subscriber(timezone=zone, next_plan_at=now if due else None)
            subscriber.channels.append(
                Channel(
                    kind=ChannelKind.SMS,
                    address=phone,
                    status=ChannelStatus.ACTIVE,
                    consent_at=now,
                    consent_method="import",
                    confirmed_at=now,
                )
            )
            session.add(subscriber)
            session.flush()
            ids.append(subscriber.id)
        session.commit()
    return ids


def seed_due_nudges(database_url: str, phones: list[str]) -> list[int]:
    """Add subscribers and plan them here (the app's own planner); the message ids."""
    subscriber_ids = add_subscribers(database_url, phones, due=True)
    settings = make_settings(database_url)
    now = datetime.now(UTC)
    plan_due(session_factory(database_url), pacing_policy(settings), now)
    with session_factory(database_url)() as session:
        rows = session.execute(
            select(Message.id, Message.scheduled_for).where(
                Message.subscriber_id.in_(subscriber_ids)
            )
        ).all()
    assert len(rows) == len(phones), f"planned {len(rows)} nudges for {len(phones)} subscribers"
    late = [mid for mid, at in rows if at > now + timedelta(seconds=5)]
    assert not late, f"nudges not due now (is {midday_zone(datetime.now(UTC))} mid-day?): {late}"
    return [mid for mid, _ in rows]


def make_due_for_planning(database_url: str, subscriber_ids: list[int]) -> None:
    """Hand these subscribers to the workers' planner (beat's `steady.plan`)."""
    with session_factory(database_url)() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(subscriber_ids))
            .values(next_plan_at=datetime.now(UTC))
        )
        session.commit()


def skip_backoff(database_url: str, message_ids: Iterable[int] | None = None) -> list[int]:
    """Make retries waiting out their backoff due now; returns their ids.

    Only the waiting is shortened: the retry was scheduled by the dispatcher (and
    checked by the caller), and the dispatcher still decides what happens next.
    """
    condition = [Message.status == MessageStatus.SCHEDULED, Message.attempts >= 1]
    if message_ids is not None:
        condition.append(Message.id.in_(list(message_ids)))
    with session_factory(database_url)() as session:
        ids = session.scalars(
            update(Message)
            .where(*condition)
            .values(scheduled_for=datetime.now(UTC))
            .returning(Message.id)
        ).all()
        session.commit()
    return list(ids)


# --- reading the outcome -----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    subscriber_id: int | None
    to: str
    status: str
    attempts: int
    scheduled_for: datetime
    updated_at: datetime
    provider_id: str | None
    error_code: str | None
    error_detail: str | None

    @property
    def later_nudge(self) -> bool:
        """Planned for hours ahead and never tried: the next nudge, not this run's."""
        return (
            self.status == MessageStatus.SCHEDULED
            and self.attempts == 0
            and self.scheduled_for > datetime.now(UTC) + LATER_NUDGE
        )

    @property
    def settled(self) -> bool:
        return self.status in FINAL_STATUSES or self.later_nudge

    def brief(self) -> str:
        return (
            f"#{self.id} {self.status} attempts={self.attempts} code={self.error_code} "
            f"detail={self.error_detail}"
        )


def message_rows(database_url: str) -> list[Row]:
    with session_factory(database_url)() as session:
        found = session.execute(
            select(
                Message.id,
                Message.subscriber_id,
                Channel.address.label("to"),
                Message.status,
                Message.attempts,
                Message.scheduled_for,
                Message.updated_at,
                Message.provider_id,
                Message.error_code,
                Message.error_detail,
            )
            .join(Channel, Channel.id == Message.channel_id)
            .order_by(Message.id)
        ).all()
    return [Row(**row._asdict()) for row in found]


def by_id(rows: Iterable[Row]) -> dict[int, Row]:
    return {row.id: row for row in rows}


def status_counts(rows: Iterable[Row]) -> dict[str, int]:
    return dict(Counter(row.status for row in rows))


class Outcome:
    """The database and the sandbox, read together once everything has settled."""

    def __init__(self, database_url: str, sandbox: SandboxServer) -> None:
        self.database_url = database_url
        self.sandbox = sandbox

    def rows(self) -> list[Row]:
        return message_rows(self.database_url)

    def sent_to(self) -> Counter[str]:
        """How many SMS the sandbox accepted per recipient (its own log)."""
        return Counter(message["to"] for message in self.sandbox.messages("twilio"))

    def describe(self) -> str:
        rows = self.rows()
        unsettled = [row.brief() for row in rows if not row.settled][:10]
        return f"{status_counts(rows)}; unsettled: {unsettled}; sandbox: {self.sandbox.stats()}"

    def wait_settled(
        self,
        timeout: float = SETTLE_SECONDS,
        on_unknown: Callable[[list[Row], Counter[str]], None] | None = None,
    ) -> list[Row]:
        """Wait until every row is final or `unknown`; check; then wait out the unknown.

        Checked twice: once nothing moves but reconciliation (an unknown row has at
        most one copy at the provider; `on_unknown` may check more), and again
        once reconciliation has settled every unknown row.
        """
        poll_until(
            lambda: all(r.settled or r.status == MessageStatus.UNKNOWN for r in self.rows()),
            timeout,
            "every message sent, failed, expired or unknown",
            self.describe,
        )
        rows = self.rows()
        check_exactly_once(rows, self.sandbox.messages("twilio"))
        if any(row.status == MessageStatus.UNKNOWN for row in rows):
            if on_unknown is not None:
                on_unknown(rows, self.sent_to())
            poll_until(
                lambda: all(r.settled for r in self.rows()),
                timeout,
                "reconciliation to settle every unknown message",
                self.describe,
            )
            rows = self.rows()
            check_exactly_once(rows, self.sandbox.messages("twilio"))
        return rows

    def assert_quiet(self, seconds: float) -> None:
        """Nothing more goes out while beat and the workers keep running."""
        before = self.sandbox.stats()["twilio"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            now = self.sandbox.stats()["twilio"]
            assert now == before, f"the sandbox got more requests after settling: {before} → {now}"


def check_exactly_once(rows: list[Row], sandbox_messages: list[dict[str, Any]]) -> None:
    """The sandbox's log against the database, message by message.

    - nothing is left `sending`;
    - every row that went out is in the sandbox's log exactly once, under its
      provider id, and nothing is in the log that no row accounts for;
    - no recipient got two messages (each has one nudge due in these runs);
    - failed, expired and cancelled rows say why, and never reached the provider;
    - an `unknown` row has at most one copy at the provider (reconciliation decides).
    """
    copies = Counter(message["to"] for message in sandbox_messages)
    sandbox_ids = Counter(message["id"] for message in sandbox_messages)
    problems: list[str] = []
    twice = {to: n for to, n in copies.items() if n > 1}
    if twice:
        problems.append(f"recipients texted more than once: {len(twice)} ({sorted(twice)[:5]})")
    rows_to: dict[str, list[Row]] = {}
    for row in rows:
        rows_to.setdefault(row.to, []).append(row)
        if row.status == MessageStatus.SENDING:
            problems.append(f"left sending: {row.brief()}")
        elif row.status in WENT_OUT_STATUSES:
            if row.provider_id is None:
                problems.append(f"sent without a provider id: {row.brief()}")
            elif sandbox_ids[row.provider_id] != 1:
                problems.append(
                    f"sent, but the sandbox holds {sandbox_ids[row.provider_id]} copies "
                    f"of {row.provider_id}: {row.brief()}"
                )
        elif row.status in (
            MessageStatus.FAILED,
            MessageStatus.EXPIRED,
            MessageStatus.CANCELLED,
        ) and not (row.error_detail or row.error_code):
            problems.append(f"{row.status} without a reason: {row.brief()}")
    for to, n in copies.items():
        went_out = sum(1 for r in rows_to.get(to, []) if r.status in WENT_OUT_STATUSES)
        unknown = sum(1 for r in rows_to.get(to, []) if r.status == MessageStatus.UNKNOWN)
        if to not in rows_to:
            problems.append(f"the sandbox holds {n} messages to a number no row has")
        elif not went_out <= n <= went_out + unknown:
            states = [r.brief() for r in rows_to[to]]
            problems.append(f"{n} copies at the provider for rows {states}")
    for to, recipient_rows in rows_to.items():
        went_out = sum(1 for r in recipient_rows if r.status in WENT_OUT_STATUSES)
        if went_out > copies[to]:
            states = [r.brief() for r in recipient_rows]
            problems.append(f"rows say sent, the provider has {copies[to]}: {states}")
    assert not problems, "exactly-once broken:\n  " + "\n  ".join(problems[:20])


def twilio_requests(sandbox: SandboxServer) -> int:
    """Every send request the sandbox answered, accepted or refused."""
    counts = sandbox.stats()["twilio"]
    return int(counts["accepted"]) + int(counts["rejected"])
