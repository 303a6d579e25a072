"""Reading a crash-safety run's outcome: the rows, the sandbox's log, exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from service.devtools.sandbox.server import SandboxServer
from service.storage.db import session_factory
from service.storage.models import Channel, Message, MessageStatus
from tests.support.faults.services import POLL_SECONDS, SETTLE_SECONDS, poll_until

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
