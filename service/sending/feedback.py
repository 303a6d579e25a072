"""Delivery reports into state: verify first (in the web layer), then drop
duplicates by a unique key, then apply the transition, and keep the raw payload.

Three sources feed in: Twilio status callbacks, SendGrid event webhooks, and the
dispatcher's own synchronous send errors. What an error code does to a channel
lives in `service.people.suppression`; this module finds the message, records the
report once, and moves the status forward only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.messages.lifecycle import SENDGRID_STATUS, TWILIO_STATUS, can_move
from service.people.suppression import Verdict, apply_verdict, sms_error_verdict
from service.storage.models import (
    Channel,
    ChannelKind,
    DeliveryEvent,
    Message,
    Subscriber,
    parse_row_id,
)

log = structlog.get_logger(__name__)

# The custom arg our SendGrid adapter puts on every email (`sendgrid_email.MESSAGE_ID_ARG`;
# a test keeps the two equal). Not imported: that would load the SendGrid SDK into
# every process that only dispatches SMS.
MESSAGE_ID_ARG = "steady_message_id"
EVENT_KEY_LENGTH = 128  # DeliveryEvent.event_key
# SendGrid events that remove an address for good: the address cannot be reached.
SENDGRID_UNREACHABLE = frozenset({"bounce", "dropped"})
# SendGrid events that are the person's own opt-out, exactly like our unsubscribe link.
SENDGRID_OPT_OUTS = frozenset({"spamreport", "unsubscribe", "group_unsubscribe"})
# A bounce of this type is a temporary block by the receiving server (SendGrid's
# "Blocked" classification), not a dead address: recorded, nothing suppressed.
SENDGRID_TRANSIENT_BOUNCE_TYPE = "blocked"
# Twilio statuses whose ErrorCode says why the message did not arrive.
TWILIO_FAILURES = frozenset({"undelivered", "failed"})


@dataclass(frozen=True)
class StatusReport:
    provider: str
    event_key: str
    provider_id: str | None
    our_id: int | None
    status: str
    error_code: str | None
    payload: dict[str, Any]


def _record_once(
    session: Session,
    *,
    message: Message | None,
    provider: str,
    event_key: str,
    event_type: str,
    error_code: str | None,
    occurred_at: datetime,
    now: datetime,
    payload: dict[str, Any],
) -> bool:
    """Store the raw report; False when the unique key says we already have it."""
    event = DeliveryEvent(
        message_id=message.id if message else None,
        provider=provider,
        event_key=event_key,
        event_type=event_type[:32],
        error_code=error_code[:32] if error_code else None,
        occurred_at=occurred_at,
        received_at=now,
        payload=payload,
    )
    try:
        # A savepoint: a duplicate rolls back this insert only, not the batch.
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False
    return True


def _move(message: Message, new_status: str | None, now: datetime) -> bool:
    if new_status is None or not can_move(message.status, new_status):
        return False
    message.status = new_status
    message.updated_at = now
    return True


# --- Twilio -----------------------------------------------------------------------------


def apply_twilio_status(session: Session, report: StatusReport, secret: str, now: datetime) -> str:
    """Record one status callback; returns 'applied', 'duplicate', 'stale' or 'unknown_message'."""
    return apply_twilio_statuses(session, [report], secret, now)[0]


def apply_twilio_statuses(
    session: Session, reports: Sequence[StatusReport], secret: str, now: datetime
) -> list[str]:
    """Record status callbacks in one go; one result per report, in order.

    'applied', 'duplicate', 'stale' or 'unknown_message'. A few statements for
    the whole batch (the web layer groups concurrent callbacks into one
    transaction): find the messages, insert the raw reports skipping known keys,
    move statuses forward. The error code's consequence (STOP, suppression,
    pause) follows every new report that carries one, even when the status
    itself is stale: a failure told late is still a failure of that address.
    """
    messages = _find_messages(session, reports)
    fresh = _record_new(
        session,
        [
            {
                "message_id": message.id if message else None,
                "provider": report.provider,
                "event_key": report.event_key,
                "event_type": (report.status or "unknown")[:32],
                "error_code": report.error_code[:32] if report.error_code else None,
                "occurred_at": now,
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
        moved = _move(message, TWILIO_STATUS.get(report.status), now)
        if moved:
            if report.provider_id and message.provider_id is None:
                message.provider_id = report.provider_id
            if report.error_code:
                message.error_code = report.error_code
        if (
            report.error_code
            and report.status in TWILIO_FAILURES
            and message.channel == ChannelKind.SMS
        ):
            _apply_sms_error(session, message, report.error_code, secret, now)
        # The web layer logs one line per callback (result, message id, status).
        results.append("applied" if moved else "stale")
    return results


def _find_messages(session: Session, reports: Sequence[StatusReport]) -> list[Message | None]:
    """The message each report is about: by our id (checked against the provider's), else by
    the provider's id. Two queries for the whole batch."""
    by_id = {
        message.id: message
        for message in session.scalars(
            select(Message).where(
                Message.id.in_({r.our_id for r in reports if r.our_id is not None})
            )
        )
    }
    found: list[Message | None] = []
    for report in reports:
        message = by_id.get(report.our_id) if report.our_id is not None else None
        # Our id rides in a URL we built; check it against the provider's id when both exist.
        ok = message is not None and message.provider_id in (None, report.provider_id)
        found.append(message if ok else None)
    missing = {r.provider_id for r, m in zip(reports, found, strict=True) if m is None}
    missing.discard(None)
    if missing:
        by_sid = {
            message.provider_id: message
            for message in session.scalars(select(Message).where(Message.provider_id.in_(missing)))
        }
        found = [
            m if m is not None else by_sid.get(r.provider_id or "")
            for r, m in zip(reports, found, strict=True)
        ]
    return found


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


def _apply_sms_error(
    session: Session, message: Message, code: str, secret: str, now: datetime
) -> Verdict:
    if message.channel_id is None:
        return Verdict.NONE
    channel = session.get(Channel, message.channel_id)
    if channel is None:
        return Verdict.NONE
    session.flush()  # the 30003 run is counted from the messages table, this one included
    verdict, reason = sms_error_verdict(session, channel, code)
    apply_verdict(session, channel, verdict, reason, secret, now, message_id=message.id)
    return verdict


def apply_send_errors(
    session: Session, failures: Iterable[tuple[int, str]], secret: str, now: datetime
) -> None:
    """Feedback from permanent send errors (message id, provider code), as callbacks get.

    The dispatcher calls this in the transaction that records the failures, so
    the failed rows are already in the messages table when a 30003 run is counted.
    """
    for message_id, code in failures:
        message = session.get(Message, message_id)
        if message is not None and message.channel == ChannelKind.SMS:
            _apply_sms_error(session, message, code, secret, now)


# --- SendGrid ---------------------------------------------------------------------------


def sendgrid_event_key(event: dict[str, Any]) -> str:
    """`sendgrid:<sg_event_id>`; a hash of the event when SendGrid gave no id."""
    event_id = str(event.get("sg_event_id") or "")
    if not event_id:
        canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        event_id = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    key = f"sendgrid:{event_id}"
    if len(key) > EVENT_KEY_LENGTH:
        key = "sendgrid:sha256:" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()
    return key


def _x_message_id(event: dict[str, Any]) -> str | None:
    """SendGrid's `sg_message_id` is the send's X-Message-Id, a dot, then a filter suffix."""
    sg_message_id = str(event.get("sg_message_id") or "")
    prefix = sg_message_id.split(".", 1)[0]
    return prefix or None


def find_email_message(session: Session, event: dict[str, Any]) -> Message | None:
    """Our id from `custom_args` (copied onto the event), else SendGrid's message id.

    The event's `email` must be the channel's address: an unsigned event (no key
    configured) must not be able to suppress someone else by naming their message.
    """
    message: Message | None = None
    x_message_id = _x_message_id(event)
    # Any text may arrive here: ASCII digits within 64 bits, or no id at all.
    our_id = parse_row_id(str(event.get(MESSAGE_ID_ARG) or ""))
    if our_id is not None:
        candidate = session.get(Message, our_id)
        if candidate is not None and candidate.provider_id in (None, "", x_message_id):
            message = candidate
    if message is None and x_message_id:
        message = session.scalar(select(Message).where(Message.provider_id == x_message_id))
    if message is None or message.channel != ChannelKind.EMAIL or message.channel_id is None:
        return None
    channel = session.get(Channel, message.channel_id)
    address = str(event.get("email") or "").strip().casefold()
    if channel is None or address != channel.address.casefold():
        return None
    return message


def _event_time(event: dict[str, Any], now: datetime) -> datetime:
    try:
        when = datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return now
    return min(when, now)


def apply_sendgrid_event(
    session: Session, event: dict[str, Any], secret: str, now: datetime
) -> str:
    """Record one SendGrid event and apply it; returns what happened, for the log."""
    kind = str(event.get("event") or "")
    message = find_email_message(session, event)
    occurred_at = _event_time(event, now)
    if not _record_once(
        session,
        message=message,
        provider="sendgrid",
        event_key=sendgrid_event_key(event),
        event_type=kind or "unknown",
        error_code=str(event.get("status") or "") or None,
        occurred_at=occurred_at,
        now=now,
        payload=event,
    ):
        return "duplicate"
    if message is None:
        return "unknown_message"
    _move(message, SENDGRID_STATUS.get(kind), now)
    if kind == "open" and message.opened_at is None:
        message.opened_at = occurred_at
    if kind == "click":
        _record_click(session, message, occurred_at)
    channel = session.get(Channel, message.channel_id) if message.channel_id else None
    if channel is None:
        return "applied"
    if kind in SENDGRID_OPT_OUTS:
        reason = f"sendgrid_{kind}"
        apply_verdict(session, channel, Verdict.STOPPED, reason, secret, now, message_id=message.id)
        return "stopped"
    if kind in SENDGRID_UNREACHABLE:
        bounce_type = str(event.get("type") or "bounce")
        if kind == "bounce" and bounce_type == SENDGRID_TRANSIENT_BOUNCE_TYPE:
            return "transient"
        reason = f"sendgrid_{kind}"
        apply_verdict(
            session, channel, Verdict.SUPPRESSED, reason, secret, now, message_id=message.id
        )
        return "suppressed"
    return "applied"


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
