"""The decision log as rows (INTERFACE.md §4, `steady decisions`), with each outcome.

Every row has the fields of INTERFACE.md §4 (``at``, ``subscriber_id``, ``available``,
``unavailable_reason``, ``options``, ``probabilities``, ``chosen``, ``policy``,
``message_id``) and, for `steady evaluate`:

* ``outcome``: the proximal outcome (PRODUCT.md): 1 when the person made no contact of
  their own (ME) in the 24 hours after the decision, 0 when they did: an ME log in
  ``(at, at + 24 h]``, or a Y to the daily question whose day (local midnight up to the
  answer) lies wholly inside that span (a Y that may belong before the decision says
  nothing about it). Null while those 24 hours are not over.
* ``engaged``: 1 when the person texted anything or clicked a link in those 24 hours
  (null while not over): the secondary outcome.
* ``days_since_signup``: from the subscriber's creation, in days.

Rows come in id order (the order they were written), ``chunk`` at a time, so an export
of millions of rows streams in constant memory.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from service.storage.models import SURVEY_YES, ContactLog, InboundMessage, Message, Subscriber
from service.storage.models_records import Decision

OUTCOME_WINDOW = timedelta(hours=24)
CHUNK = 5000
FIELDS = (
    "at",
    "subscriber_id",
    "available",
    "unavailable_reason",
    "options",
    "probabilities",
    "chosen",
    "policy",
    "message_id",
)
EXTRA_FIELDS = ("days_since_signup", "outcome", "engaged")


class Record(NamedTuple):
    """One decision with its outcome, as the database holds it (``at`` a datetime)."""

    at: datetime
    subscriber_id: int
    available: bool
    unavailable_reason: str | None
    options: list[str]
    probabilities: dict[str, float]
    chosen: str
    policy: str
    message_id: int | None
    days_since_signup: float
    outcome: int | None
    engaged: int | None

    def row(self) -> dict[str, Any]:
        """As `steady decisions --json` prints it."""
        return {**self._asdict(), "at": self.at.isoformat()}


_TABLE = cast(Table, Decision.__table__)
_COLUMNS = (
    _TABLE.c.id,
    _TABLE.c.at,
    _TABLE.c.subscriber_id,
    _TABLE.c.available,
    _TABLE.c.unavailable_reason,
    _TABLE.c.options,
    _TABLE.c.probabilities,
    _TABLE.c.chosen,
    _TABLE.c.policy,
    _TABLE.c.message_id,
)


def iter_records(
    session: Session, now: datetime, *, since: datetime | None = None, chunk: int = CHUNK
) -> Iterator[Record]:
    """Every decision (from ``since``), oldest first, with its outcome as of ``now``.

    Plain rows, not ORM objects: an evaluation reads hundreds of thousands of them.
    """
    last = 0
    while True:
        query = select(*_COLUMNS).where(_TABLE.c.id > last).order_by(_TABLE.c.id).limit(chunk)
        if since is not None:
            query = query.where(_TABLE.c.at >= since)
        decisions = session.execute(query).all()
        if not decisions:
            return
        last = decisions[-1].id
        yield from _with_outcomes(session, decisions, now)


def iter_rows(
    session: Session, now: datetime, *, since: datetime | None = None, chunk: int = CHUNK
) -> Iterator[dict[str, Any]]:
    """``iter_records`` as `steady decisions --json` prints them."""
    for record in iter_records(session, now, since=since, chunk=chunk):
        yield record.row()


def load_rows(session: Session, now: datetime) -> list[dict[str, Any]]:
    return list(iter_rows(session, now))


class _Events:
    """Per subscriber, sorted times of what the outcomes count."""

    def __init__(self) -> None:
        self.me: dict[int, list[datetime]] = defaultdict(list)
        self.survey_yes: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        self.engaged: dict[int, list[datetime]] = defaultdict(list)

    def sort(self) -> None:
        for table in (self.me, self.engaged):
            for times in table.values():
                times.sort()


def _with_outcomes(session: Session, decisions: Sequence[Any], now: datetime) -> Iterator[Record]:
    people = {d.subscriber_id for d in decisions}
    start = min(d.at for d in decisions)
    end = max(d.at for d in decisions) + OUTCOME_WINDOW
    subscribers = {
        row.id: (row.created_at, row.timezone)
        for row in session.execute(
            select(Subscriber.id, Subscriber.created_at, Subscriber.timezone).where(
                Subscriber.id.in_(people)
            )
        )
    }
    events = _events(session, people, start, end, subscribers)
    day = timedelta(days=1)
    for d in decisions:
        created, _ = subscribers.get(d.subscriber_id, (d.at, "UTC"))
        over = d.at + OUTCOME_WINDOW <= now
        yield Record(
            d.at,
            d.subscriber_id,
            d.available,
            d.unavailable_reason,
            d.options,
            d.probabilities,
            d.chosen,
            d.policy,
            d.message_id,
            round((d.at - created) / day, 4),
            _outcome(events, d.subscriber_id, d.at) if over else None,
            _engaged(events, d.subscriber_id, d.at) if over else None,
        )


def _events(
    session: Session,
    people: set[int],
    start: datetime,
    end: datetime,
    subscribers: dict[int, tuple[datetime, str]],
) -> _Events:
    events = _Events()
    for subscriber_id, occurred_at in session.execute(
        select(ContactLog.subscriber_id, ContactLog.occurred_at).where(
            ContactLog.subscriber_id.in_(people),
            ContactLog.initiator == "me",
            ContactLog.occurred_at > start,
            ContactLog.occurred_at <= end,
        )
    ):
        events.me[subscriber_id].append(occurred_at)
    for sender, received_at, command in session.execute(
        select(
            InboundMessage.subscriber_id, InboundMessage.received_at, InboundMessage.command
        ).where(
            InboundMessage.subscriber_id.in_(people),
            InboundMessage.received_at > start,
            InboundMessage.received_at <= end,
        )
    ):
        if sender is None:
            continue
        events.engaged[sender].append(received_at)
        if command == SURVEY_YES:
            local = received_at.astimezone(ZoneInfo(subscribers[sender][1]))
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            events.survey_yes[sender].append((midnight, received_at))
    for sent_to, clicked_at in session.execute(
        select(Message.subscriber_id, Message.clicked_at).where(
            Message.subscriber_id.in_(people),
            Message.clicked_at > start,
            Message.clicked_at <= end,
        )
    ):
        if sent_to is not None and clicked_at is not None:
            events.engaged[sent_to].append(clicked_at)
    events.sort()
    return events


def _count(times: list[datetime], at: datetime) -> int:
    return bisect_right(times, at + OUTCOME_WINDOW) - bisect_right(times, at)


def _outcome(events: _Events, subscriber_id: int, at: datetime) -> int:
    if _count(events.me.get(subscriber_id, []), at):
        return 0
    for day_start, answered in events.survey_yes.get(subscriber_id, ()):
        if at < day_start and answered <= at + OUTCOME_WINDOW:
            return 0
    return 1


def _engaged(events: _Events, subscriber_id: int, at: datetime) -> int:
    return 1 if _count(events.engaged.get(subscriber_id, []), at) else 0
