"""Delivery reports into state: verify and parse first (the provider's webhook
module, called by the web layer), then drop duplicates by a unique key, then
apply the transition, and keep the raw payload.

Three sources feed in: status callbacks and events (as neutral `DeliveryReport`s),
and the dispatcher's and reconciler's own send errors (as a `Cause`). What a cause
does to a channel lives in `service.people.suppression`; this module finds the
message, records the report once, and moves the status forward only. No provider
code is read here: each provider's folder turns its own into these words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.messages.lifecycle import can_move
from service.people.suppression import Verdict, apply_verdict, verdict_for
from service.providers.base import Cause, DeliveryReason, DeliveryReport, Engagement
from service.storage.models import Channel, DeliveryEvent, Message, Subscriber

CODE_LENGTH = 32  # Message.error_code, DeliveryEvent.error_code and event_type


def _move(message: Message, new_status: str | None, now: datetime) -> bool:
    if new_status is None or not can_move(message.status, new_status):
        return False
    message.status = new_status
    message.updated_at = now
    return True


def apply_reports(
    session: Session, reports: Sequence[DeliveryReport], hasher: AddressHasher, now: datetime
) -> list[str]:
    """Record delivery reports in one go; one result per report, in order.

    'duplicate' or 'unknown_message'; else what it did: 'stopped', 'suppressed',
    'paused' or 'transient' when its cause touched the channel, otherwise
    'applied', or 'stale' for a status behind the one we have. A few statements
    for the whole batch (the web layer groups concurrent status callbacks into
    one transaction): find the messages, insert the raw reports skipping known
    keys, apply each. A cause has its consequence (STOP, suppression, pause) for
    every new report that carries one, even when the status itself is stale: a
    failure told late is still a failure of that address.
    """
    messages = _find_messages(session, reports)
    fresh = _record_new(
        session,
        [
            {
                "message_id": message.id if message else None,
                "provider": report.provider,
                "event_key": report.event_key,
                "event_type": report.event[:CODE_LENGTH],
                "error_code": report.error_code[:CODE_LENGTH] if report.error_code else None,
                "occurred_at": _occurred_at(report, now),
                "received_at": now,
                "payload": report.payload,
            }
            for report, message in zip(reports, messages, strict=True)
        ],
    )
    results: list[str] = []
    for report, message in zip(reports, messages, strict=True):
        if report.event_key not in fresh:
            results.append("duplicate")
            continue
        fresh.discard(report.event_key)  # a repeat inside this batch is a duplicate too
        if message is None:
            results.append("unknown_message")
            continue
        # The web layer logs one line per callback or event post.
        results.append(_apply(session, report, message, hasher, now))
    return results


def _apply(
    session: Session, report: DeliveryReport, message: Message, hasher: AddressHasher, now: datetime
) -> str:
    moved = _move(message, report.status, now)
    if moved:
        if report.provider_id and not message.provider_id:
            message.provider_id = report.provider_id
        if report.error_code:
            message.error_code = report.error_code[:CODE_LENGTH]
    occurred_at = _occurred_at(report, now)
    if report.engagement == Engagement.OPENED and message.opened_at is None:
        message.opened_at = occurred_at
    if report.engagement == Engagement.CLICKED:
        _record_click(session, message, occurred_at)
    if report.cause is not None:
        if report.cause.reason == DeliveryReason.TRANSIENT:
            return "transient"
        verdict = _apply_cause(session, message, report.cause, hasher, now)
        if verdict != Verdict.NONE:
            return str(verdict)
    return "applied" if moved or report.status is None else "stale"


def _occurred_at(report: DeliveryReport, now: datetime) -> datetime:
    """The provider's time for a report, never later than ours."""
    return now if report.occurred_at is None else min(report.occurred_at, now)


def _find_messages(session: Session, reports: Sequence[DeliveryReport]) -> list[Message | None]:
    """The message each report is about: by our id (checked against the provider's), else by
    the provider's id. Two queries for the whole batch."""
    by_id = {
        message.id: message
        for message in session.scalars(
            select(Message).where(
                Message.id.in_({r.message_id for r in reports if r.message_id is not None})
            )
        )
    }
    found: list[Message | None] = []
    for report in reports:
        message = by_id.get(report.message_id) if report.message_id is not None else None
        # Our id rides in a URL or custom arg; check it against the provider's id when both exist.
        ok = message is not None and message.provider_id in (None, "", report.provider_id)
        found.append(message if ok else None)
    missing = {r.provider_id for r, m in zip(reports, found, strict=True) if m is None}
    missing.discard(None)
    if missing:
        by_provider_id = {
            message.provider_id: message
            for message in session.scalars(select(Message).where(Message.provider_id.in_(missing)))
        }
        found = [
            m if m is not None else by_provider_id.get(r.provider_id or "")
            for r, m in zip(reports, found, strict=True)
        ]
    return [
        m if m is not None and _reported_by_its_channel(session, r, m) else None
        for r, m in zip(reports, found, strict=True)
    ]


def _reported_by_its_channel(session: Session, report: DeliveryReport, message: Message) -> bool:
    """A report about a message on another channel, or (when the report names its
    address) to another address, is not about this message: an unsigned event (no
    key configured) must not be able to suppress someone else by naming their message."""
    if message.channel != report.channel:
        return False
    if report.recipient is None:
        return True
    channel = session.get(Channel, message.channel_id) if message.channel_id else None
    return channel is not None and report.recipient.casefold() == channel.address.casefold()


def _record_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert raw reports, skipping event keys already stored; returns the keys inserted."""
    if not rows:
        return set()
    table = cast(Table, DeliveryEvent.__table__)
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql_insert(table)
    elif dialect == "sqlite":
        statement = sqlite_insert(table)
    else:  # pragma: no cover - Steady runs on PostgreSQL and SQLite
        raise RuntimeError(f"unsupported database: {dialect}")
    unique = {row["event_key"]: row for row in rows}  # one insert per key
    # One statement shape whatever the batch size, so it is compiled once and cached;
    # SQLAlchemy sends the rows as multi-row INSERTs ("insertmanyvalues").
    inserted = session.execute(
        statement.on_conflict_do_nothing(index_elements=["event_key"]).returning(table.c.event_key),
        list(unique.values()),
    )
    return set(inserted.scalars())


def _apply_cause(
    session: Session, message: Message, cause: Cause, hasher: AddressHasher, now: datetime
) -> Verdict:
    if message.channel_id is None:
        return Verdict.NONE
    channel = session.get(Channel, message.channel_id)
    if channel is None:
        return Verdict.NONE
    session.flush()  # a run of failures is counted from the messages table, this one included
    verdict, reason = verdict_for(session, channel, cause)
    apply_verdict(session, channel, verdict, reason, hasher, now, message_id=message.id)
    return verdict


def apply_send_errors(
    session: Session, failures: Iterable[tuple[int, Cause]], hasher: AddressHasher, now: datetime
) -> None:
    """Feedback from failed sends (message id, cause), as a status callback gives.

    The dispatcher calls this in the transaction that records the failures, so
    the failed rows are already in the messages table when a run of them is counted.
    """
    for message_id, cause in failures:
        message = session.get(Message, message_id)
        if message is not None:
            _apply_cause(session, message, cause, hasher, now)


def _record_click(session: Session, message: Message, clicked_at: datetime) -> None:
    """A click is engagement (PRODUCT.md): it keeps the cadence from halving."""
    if message.clicked_at is None:
        message.clicked_at = clicked_at
    if message.opened_at is None:
        message.opened_at = clicked_at  # a click is an open that images did not report
    if message.subscriber_id is None:
        return
    subscriber = session.get(Subscriber, message.subscriber_id)
    if subscriber is not None and (
        subscriber.last_engaged_at is None or subscriber.last_engaged_at < clicked_at
    ):
        subscriber.last_engaged_at = clicked_at
