"""Tables that count, log and keep: tallies, the decision log and the archive.

Split from models.py (which imports this module, so `Base.metadata` and Alembic
see every table). Import these classes from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.models import Base, BigId


class Tally(Base):
    """Running counts of rows by (kind, channel, status), kept by database triggers.

    `/metrics` and the admin figures read these instead of counting the growing
    tables (issue 11). Triggers on `messages` and `delivery_events` write every
    change as a delta row (PostgreSQL: one per statement and key, so concurrent
    writers never wait on one hot counter row); readers add the deltas to the
    totals and fold them in now and then (service/reporting/tallies.py).
    """

    __tablename__ = "tallies"

    topic: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class TallyDelta(Base):
    """A change to a `Tally`, not yet folded into it."""

    __tablename__ = "tally_deltas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    n: Mapped[int] = mapped_column(BigInteger)


class Decision(Base):
    """One decision point of one subscriber: append-only (PRODUCT.md, "Learning what helps").

    `options` lists what could have been chosen ("none" included), `probabilities`
    maps each to its chance, `chosen` is what was; `draw` is the seeded uniform number
    that chose (null when nothing was drawn). `message_id` names the nudge it planned:
    a plain reference, not a foreign key, since archived messages leave the table.
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime]
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    available: Mapped[bool] = mapped_column(Boolean)
    unavailable_reason: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[list[str]] = mapped_column(JSON)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    chosen: Mapped[str] = mapped_column(String(32))
    policy: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    draw: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_decisions_subscriber_at", "subscriber_id", "at"),
        # BRIN on PostgreSQL (migration 0010): the log is written in time order.
        Index("ix_decisions_at", "at", postgresql_using="brin"),
    )


# --- archive: rows `steady archive` moved out of the live tables (service/storage/archive.py)
# The same columns as the live tables (keep them in step: tests/storage/test_archive.py
# checks), no foreign keys, few indexes, plus when each row was archived.


class MessageArchive(Base):
    __tablename__ = "messages_archive"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    subscriber_id: Mapped[int | None] = mapped_column(BigId)
    channel_id: Mapped[int | None] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer)
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(String(300))
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_messages_archive_subscriber_created", "subscriber_id", "created_at"),
        Index("ix_messages_archive_created_at", "created_at"),
    )


class DeliveryEventArchive(Base):
    __tablename__ = "delivery_events_archive"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    message_id: Mapped[int | None] = mapped_column(BigId)
    provider: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    archived_at: Mapped[datetime]

    __table_args__ = (Index("ix_delivery_events_archive_message_id", "message_id"),)
