"""Delivery and engagement figures, read from the database (the truth).

Shared by `steady stats`, the admin API and dashboard, and the `/metrics`
collector. Every query is a GROUP BY whose result size is bounded by the
number of statuses, channels or time buckets, never by the number of people.
No figure here carries an address or anything a person wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, case, func, literal_column, select
from sqlalchemy.orm import Session

from service.channels import ChannelKind
from service.storage.models import (
    Channel,
    ChannelStatus,
    DeliveryEvent,
    Message,
    MessageStatus,
    Subscriber,
    Suppression,
)

# A person's status is their best channel's: one active channel makes them active.
SUBSCRIBER_STATUS_ORDER: tuple[str, ...] = (
    ChannelStatus.ACTIVE,
    ChannelStatus.PENDING,
    ChannelStatus.STOPPED,
    ChannelStatus.SUPPRESSED,
)
SEND_HISTORY_HOURS = 48
OPT_OUT_HISTORY_DAYS = 14
FUNNEL_DAYS = 7
FAILURE_CODES_SHOWN = 10
UPCOMING_HOURS = 24
# Statuses that mean the provider took the message (or a later report says so).
REACHED_PROVIDER = frozenset(
    {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}
)

TimeUnit = Literal["hour", "day"]


def time_bucket(column: Any, unit: TimeUnit, dialect: str) -> ColumnElement[Any]:
    """The start of the hour or day a timestamp falls in, in SQL.

    PostgreSQL has `date_trunc`; SQLite stores text and has `strftime`. Read the
    result back with `bucket_start`, which accepts both shapes.
    """
    if dialect == "postgresql":
        # A literal, not a bound parameter: PostgreSQL must see the very same
        # expression in SELECT and GROUP BY.
        return func.date_trunc(literal_column(f"'{unit}'"), column)
    pattern = "%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00"
    return func.strftime(pattern, column)


def bucket_start(value: Any) -> datetime:
    """A bucket from `time_bucket` as an aware UTC datetime (stored times are UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _counts(rows: Iterable[Any]) -> dict[str, int]:
    return {str(key): int(count) for key, count in rows if key is not None}


def _subscriber_rank() -> Select[int, Any]:
    rank = case(
        {status: index for index, status in enumerate(SUBSCRIBER_STATUS_ORDER)},
        value=Channel.status,
        else_=len(SUBSCRIBER_STATUS_ORDER),
    )
    return select(
        Channel.subscriber_id.label("subscriber_id"), func.min(rank).label("rank")
    ).group_by(Channel.subscriber_id)


def subscriber_ids_with_status(status: str) -> Select[int]:
    """A query of the ids of subscribers whose best channel has `status`."""
    index = SUBSCRIBER_STATUS_ORDER.index(status)
    ranked = _subscriber_rank().subquery()
    return select(ranked.c.subscriber_id).where(ranked.c.rank == index)


def subscriber_counts(session: Session) -> dict[str, int]:
    """People by their best channel's status, plus `flagged` and `total`."""
    ranked = _subscriber_rank().subquery()
    rows = session.execute(select(ranked.c.rank, func.count()).group_by(ranked.c.rank))
    by_rank = {int(rank): int(count) for rank, count in rows}
    counts = {
        status: int(by_rank.get(index, 0)) for index, status in enumerate(SUBSCRIBER_STATUS_ORDER)
    }
    counts["flagged"] = int(
        session.scalar(select(func.count()).where(Subscriber.flagged_at.is_not(None))) or 0
    )
    counts["total"] = int(session.scalar(select(func.count(Subscriber.id))) or 0)
    return counts


def channel_counts(session: Session) -> dict[str, dict[str, int]]:
    """Channels by kind, then status (every known status listed, zeros included)."""
    counts = {kind.value: {status.value: 0 for status in ChannelStatus} for kind in ChannelKind}
    rows = session.execute(
        select(Channel.kind, Channel.status, func.count()).group_by(Channel.kind, Channel.status)
    )
    for kind, status, count in rows:
        counts.setdefault(kind, {})[status] = int(count)
    return counts


def message_counts(session: Session) -> dict[str, int]:
    """Messages by status (every status listed)."""
    counts = {status.value: 0 for status in MessageStatus}
    counts.update(
        _counts(session.execute(select(Message.status, func.count()).group_by(Message.status)))
    )
    return counts


def message_counts_by_kind(session: Session) -> list[tuple[str, str, str, int]]:
    """(kind, channel, status, count) for every combination that has messages."""
    rows = session.execute(
        select(Message.kind, Message.channel, Message.status, func.count()).group_by(
            Message.kind, Message.channel, Message.status
        )
    )
    return [(kind, channel, status, int(count)) for kind, channel, status, count in rows]


def delivery_event_counts(session: Session) -> dict[str, int]:
    return _counts(
        session.execute(
            select(DeliveryEvent.event_type, func.count()).group_by(DeliveryEvent.event_type)
        )
    )


def opt_outs(session: Session) -> list[tuple[str, str, int]]:
    """Channels now stopped: (channel kind, reason, count)."""
    reason = func.coalesce(Channel.status_reason, literal_column("'unknown'"))
    rows = session.execute(
        select(Channel.kind, reason, func.count())
        .where(Channel.status == ChannelStatus.STOPPED)
        .group_by(Channel.kind, reason)
    )
    return [(kind, reason, int(count)) for kind, reason, count in rows]


def suppressions(session: Session) -> list[tuple[str, str, int]]:
    """Steady's do-not-contact list: (channel, reason, count)."""
    rows = session.execute(
        select(Suppression.channel, Suppression.reason, func.count()).group_by(
            Suppression.channel, Suppression.reason
        )
    )
    return [(channel, reason, int(count)) for channel, reason, count in rows]


@dataclass(frozen=True)
class QueueState:
    due: int
    lag_seconds: float  # now - the oldest due scheduled message; 0 when nothing waits


def queue_state(session: Session, now: datetime) -> QueueState:
    due, oldest = session.execute(
        select(func.count(), func.min(Message.scheduled_for)).where(
            Message.status == MessageStatus.SCHEDULED, Message.scheduled_for <= now
        )
    ).one()
    if oldest is None:
        return QueueState(due=0, lag_seconds=0.0)
    oldest_at = bucket_start(oldest)  # min() loses the column type on some dialects
    return QueueState(due=int(due), lag_seconds=max((now - oldest_at).total_seconds(), 0.0))


def _by_reason(rows: Sequence[tuple[str, str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for _channel, reason, count in rows:
        totals[reason] = totals.get(reason, 0) + count
    return totals


def collect(session: Session, now: datetime) -> dict[str, Any]:
    """Everything `steady stats --json` and `GET /admin/api/stats` print."""
    stopped = opt_outs(session)
    suppressed = suppressions(session)
    queue = queue_state(session, now)
    return {
        "generated_at": now.isoformat(),
        "subscribers": subscriber_counts(session),
        "channels": channel_counts(session),
        "messages": message_counts(session),
        "delivery_events": delivery_event_counts(session),
        "opt_outs": sum(count for _, _, count in stopped),
        "opt_outs_by_reason": _by_reason(stopped),
        "suppressions": sum(count for _, _, count in suppressed),
        "suppressions_by_reason": _by_reason(suppressed),
        "queue": {"due": queue.due, "lag_seconds": round(queue.lag_seconds, 3)},
    }


# --- time series for the dashboard ---------------------------------------------------


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class HourlySeries:
    hours: list[datetime]  # bucket starts, oldest first
    by_channel: dict[str, list[int]]  # channel -> one count per hour


def sends_per_hour(
    session: Session, now: datetime, hours: int = SEND_HISTORY_HOURS
) -> HourlySeries:
    """Messages handed to a provider per hour and channel, over the last `hours` hours."""
    first = _hour_floor(now) - timedelta(hours=hours - 1)
    bucket = time_bucket(Message.sent_at, "hour", _dialect(session))
    rows = session.execute(
        select(bucket, Message.channel, func.count())
        .where(Message.sent_at >= first, Message.sent_at <= now)
        .group_by(bucket, Message.channel)
    )
    return _hourly(first, hours, rows)


def upcoming_per_hour(session: Session, now: datetime, hours: int = UPCOMING_HOURS) -> HourlySeries:
    """Scheduled messages per hour and channel for the next `hours` hours (due ones first)."""
    first = _hour_floor(now)
    bucket = time_bucket(Message.scheduled_for, "hour", _dialect(session))
    rows = session.execute(
        select(bucket, Message.channel, func.count())
        .where(
            Message.status == MessageStatus.SCHEDULED,
            Message.scheduled_for >= first,
            Message.scheduled_for < first + timedelta(hours=hours),
        )
        .group_by(bucket, Message.channel)
    )
    return _hourly(first, hours, rows)


def _hourly(first: datetime, hours: int, rows: Iterable[Any]) -> HourlySeries:
    starts = [first + timedelta(hours=offset) for offset in range(hours)]
    index = {start: position for position, start in enumerate(starts)}
    by_channel = {kind.value: [0] * hours for kind in ChannelKind}
    for raw_bucket, channel, count in rows:
        position = index.get(bucket_start(raw_bucket))
        if position is not None:
            by_channel.setdefault(channel, [0] * hours)[position] += int(count)
    return HourlySeries(hours=starts, by_channel=by_channel)


@dataclass(frozen=True)
class Funnel:
    """What became of the messages created in the window."""

    days: int
    scheduled: int  # every message created (the top of the funnel)
    sent: int  # handed to a provider
    delivered: int
    undelivered: int
    failed: int
    expired: int
    cancelled: int
    waiting: int  # still scheduled, sending or unknown


def funnel(session: Session, now: datetime, days: int = FUNNEL_DAYS) -> Funnel:
    rows = session.execute(
        select(Message.status, func.count(), func.count(Message.sent_at))
        .where(Message.created_at >= now - timedelta(days=days))
        .group_by(Message.status)
    ).all()
    by_status = {status: int(count) for status, count, _ in rows}
    # A message that failed after the provider took it still counts as sent.
    sent = sum(
        int(count) if status in REACHED_PROVIDER else int(with_sent_at)
        for status, count, with_sent_at in rows
    )
    return Funnel(
        days=days,
        scheduled=sum(by_status.values()),
        sent=sent,
        delivered=by_status.get(MessageStatus.DELIVERED, 0),
        undelivered=by_status.get(MessageStatus.UNDELIVERED, 0),
        failed=by_status.get(MessageStatus.FAILED, 0),
        expired=by_status.get(MessageStatus.EXPIRED, 0),
        cancelled=by_status.get(MessageStatus.CANCELLED, 0),
        waiting=sum(
            by_status.get(status, 0)
            for status in (MessageStatus.SCHEDULED, MessageStatus.SENDING, MessageStatus.UNKNOWN)
        ),
    )


def failures_by_code(
    session: Session, now: datetime, days: int = FUNNEL_DAYS, limit: int = FAILURE_CODES_SHOWN
) -> list[tuple[str, str, int]]:
    """(channel, error code, count) of failed and undelivered messages, most first."""
    code = func.coalesce(Message.error_code, literal_column("'none'"))
    rows = session.execute(
        select(Message.channel, code, func.count())
        .where(
            Message.status.in_([MessageStatus.FAILED, MessageStatus.UNDELIVERED]),
            Message.created_at >= now - timedelta(days=days),
        )
        .group_by(Message.channel, code)
        .order_by(func.count().desc(), Message.channel, code)
        .limit(limit)
    )
    return [(channel, error_code, int(count)) for channel, error_code, count in rows]


def opt_outs_per_day(
    session: Session, now: datetime, days: int = OPT_OUT_HISTORY_DAYS
) -> list[tuple[date, int]]:
    """Channels stopped per UTC day over the last `days` days.

    Read from `channels.stopped_at`, so a channel that was stopped and later
    started again no longer counts: this is "opt-outs that still stand".
    """
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    first_at = datetime(first.year, first.month, first.day, tzinfo=UTC)
    bucket = time_bucket(Channel.stopped_at, "day", _dialect(session))
    rows = session.execute(
        select(bucket, func.count())
        .where(Channel.status == ChannelStatus.STOPPED, Channel.stopped_at >= first_at)
        .group_by(bucket)
    )
    per_day = {bucket_start(raw).date(): int(count) for raw, count in rows}
    return [(day, per_day.get(day, 0)) for day in (first + timedelta(days=n) for n in range(days))]


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    figures: dict[str, Any]
    sends: HourlySeries
    upcoming: HourlySeries
    funnel: Funnel
    failures: list[tuple[str, str, int]]
    opt_outs_daily: list[tuple[date, int]]
    sent_last_24h: int


def dashboard(session: Session, now: datetime) -> Dashboard:
    """Everything the admin page draws, in a dozen bounded queries."""
    sends = sends_per_hour(session, now)
    return Dashboard(
        now=now,
        figures=collect(session, now),
        sends=sends,
        upcoming=upcoming_per_hour(session, now),
        funnel=funnel(session, now),
        failures=failures_by_code(session, now),
        opt_outs_daily=opt_outs_per_day(session, now),
        sent_last_24h=sum(sum(counts[-24:]) for counts in sends.by_channel.values()),
    )
