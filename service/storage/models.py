"""Tables. The database is the truth: a nudge is a row before it is anything else.

Times are stored as naive UTC and handed back as aware UTC (`UTCDateTime`), so
SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from service.addresses import mailbox_key
from service.channels import ChannelKind

# Stable constraint names so Alembic revisions work the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive UTC at rest."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


_CHANNEL_KINDS = {kind.value: kind for kind in ChannelKind}


class KindColumn(TypeDecorator[ChannelKind]):
    """A channel kind: stored as its plain string, read back as `ChannelKind`."""

    impl = String(8)
    cache_ok = True

    def process_bind_param(self, value: ChannelKind | None, dialect: Dialect) -> str | None:
        return None if value is None else ChannelKind(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ChannelKind | None:
        if value is None:
            return None
        # A dict lookup, not the enum's call: the planner reads tens of thousands a pass.
        return _CHANNEL_KINDS.get(value) or ChannelKind(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ChannelStatus(StrEnum):
    """Per-channel subscription state."""

    PENDING = "pending"  # signed up, not yet confirmed (double opt-in)
    ACTIVE = "active"  # confirmed; nudges may go
    STOPPED = "stopped"  # the person said stop; only START brings it back
    SUPPRESSED = "suppressed"  # the provider says it cannot reach them (bounce, 21211, ...)


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


class Subscriber(Base):
    """A person. Their addresses live in `channels`; their choices in columns here."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    timezone: Mapped[str] = mapped_column(String(64))
    # Until the person names their zone: every zone their number may be in, space-
    # separated IANA names; nudges keep the hours of each (service.people.zones.numbers).
    timezone_candidates: Mapped[str | None] = mapped_column(Text)
    # Preferences (PRODUCT.md "Pacing v1"); each has a product default.
    cadence_per_week: Mapped[int] = mapped_column(Integer, default=7)
    hour_start: Mapped[int] = mapped_column(Integer, default=8)
    hour_end: Mapped[int] = mapped_column(Integer, default=20)
    activity_areas: Mapped[str] = mapped_column(
        String(200), default=""
    )  # comma-separated; "" = all
    separation_date: Mapped[date | None] = mapped_column(Date)
    discreet: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_until: Mapped[datetime | None]
    # Pacing bookkeeping.
    next_plan_at: Mapped[
        datetime | None
    ]  # when the planner should look at them next; NULL = not now
    welcomed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_engaged_at: Mapped[datetime | None]
    last_done_at: Mapped[datetime | None]
    # Safety: crisis words flag a person for an operator and stop nudges.
    flagged_at: Mapped[datetime | None]
    flag_reason: Mapped[str | None] = mapped_column(String(200))
    # Learning what helps (PRODUCT.md): the person's next decision point while
    # STEADY_EXPERIMENT is on (service.sending.decisions), and their opt-out of the
    # randomisation (they get Pacing v1, and are left out of estimation).
    next_decision_at: Mapped[datetime | None]
    experiment_opt_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    channels: Mapped[list[Channel]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="Channel.id"
    )

    __table_args__ = (
        Index("ix_subscribers_next_plan_at", "next_plan_at"),
        Index("ix_subscribers_next_decision_at", "next_decision_at"),
    )


def _address_key_default(context: DefaultExecutionContext | None) -> str | None:
    """Every insert gets its mailbox key, whichever code path adds the channel."""
    if context is None:  # called without a statement (storage.bulkwrite fills defaults)
        return None
    values = context.get_current_parameters()  # type: ignore[no-untyped-call]
    address = values.get("address")
    return None if address is None else mailbox_key(str(values.get("kind") or ""), str(address))


class Channel(Base):
    """One address of a subscriber, with its own state and consent record."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    kind: Mapped[ChannelKind] = mapped_column(KindColumn)
    address: Mapped[str] = mapped_column(String(320))  # E.164 or a normalised email
    status: Mapped[str] = mapped_column(String(16), default=ChannelStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Consent (TCPA / CTIA): when, how and the evidence, then the confirmation.
    consent_at: Mapped[datetime | None]
    consent_method: Mapped[str | None] = mapped_column(String(32))  # web_form, sms_keyword, import
    consent_evidence: Mapped[dict[str, Any] | None]
    confirmed_at: Mapped[datetime | None]
    confirm_evidence: Mapped[dict[str, Any] | None]
    stopped_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(String(64))
    # The mailbox behind the address, for limits and lookups: spellings of one
    # mailbox (case, +tags, Gmail dots) share it; the address stays as given.
    address_key: Mapped[str | None] = mapped_column(String(320), default=_address_key_default)
    # The channel whose preferences page asked this one to join its person. While
    # pending, this channel waits under a person of its own; confirmed on itself,
    # it moves over. A link shows only channels proven together this way.
    joined_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL")
    )

    subscriber: Mapped[Subscriber] = relationship(back_populates="channels")

    __table_args__ = (
        UniqueConstraint("kind", "address", name="uq_channels_kind_address"),
        Index("ix_channels_subscriber_id", "subscriber_id"),
        Index("ix_channels_stopped_at", "stopped_at"),
        Index("ix_channels_kind_address_key", "kind", "address_key"),
    )


class ContactLog(Base):
    """A contact between the subscriber and their partner, as the subscriber logged it."""

    __tablename__ = "contact_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    initiator: Mapped[str] = mapped_column(String(8))  # me | them
    medium: Mapped[str | None] = mapped_column(String(16))  # text | call | saw
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )

    __table_args__ = (Index("ix_contact_logs_subscriber_occurred", "subscriber_id", "occurred_at"),)


class ActivityLog(Base):
    """A positive activity the subscriber did (`DONE gym`)."""

    __tablename__ = "activity_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    area: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(160))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_activity_logs_subscriber_occurred", "subscriber_id", "occurred_at"),
    )


class Message(Base):
    """An outbound message: the outbox row the dispatcher claims and sends."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    channel: Mapped[ChannelKind] = mapped_column(KindColumn)
    kind: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(
        Text
    )  # set for replies (TwiML); nudges render at send time
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 = answers a person, 1 = nudge
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.SCHEDULED)
    scheduled_for: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_detail: Mapped[str | None] = mapped_column(String(300))
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        # "What is due" only ever looks at scheduled rows: keep that index small.
        # The claim's whole ORDER BY, so a backlog sharing one `scheduled_for` needs no sort.
        Index(
            "ix_messages_claim",
            "priority",
            "scheduled_for",
            "id",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        Index(
            "ix_messages_lease",
            "lease_until",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_messages_subscriber_created", "subscriber_id", "created_at"),
        Index("ix_messages_provider_id", "provider_id"),
        Index("ix_messages_sent_at", "sent_at"),
        # The log's order (`steady messages --since`) and what `steady archive` takes.
        Index("ix_messages_created_at", "created_at"),
    )


class DeliveryEvent(Base):
    """A provider's report on a message (status callback or event), raw payload kept."""

    __tablename__ = "delivery_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(16))
    # Duplicate deliveries of the same report carry the same key; the unique index drops them.
    event_key: Mapped[str] = mapped_column(String(128), unique=True)
    event_type: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_delivery_events_message_id", "message_id"),)


# `inbound_messages.command` of an answer to the daily question (service.replies.learning);
# the outcome of each decision reads them (service.reporting.decision_log).
SURVEY_YES = "survey_yes"
SURVEY_NO = "survey_no"


class InboundMessage(Base):
    """A text a person sent us. Kept whether or not we understood it."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    provider_id: Mapped[str | None] = mapped_column(
        String(64), unique=True
    )  # MessageSid: retries dedupe
    body: Mapped[str] = mapped_column(Text)
    command: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When an operator cleared it from the review list (service/people/review.py).
    reviewed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_inbound_messages_subscriber", "subscriber_id", "received_at"),
        # The review list: texts Steady did not understand that nobody has cleared yet.
        Index(
            "ix_inbound_messages_unreviewed",
            "received_at",
            postgresql_where=text("reviewed_at IS NULL AND command = 'unknown'"),
            sqlite_where=text("reviewed_at IS NULL AND command = 'unknown'"),
        ),
    )


class Suppression(Base):
    """Steady's own do-not-contact list, by hashed address, across every sender."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[ChannelKind] = mapped_column(KindColumn)
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminSession(Base):
    """A signed-in operator's session, server-side: logging out deletes it.

    The cookie carries a random id; only its hash is stored. `token_fingerprint`
    binds the session to the admin token it was opened with, so rotating the
    token ends every session.
    """

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_admin_sessions_expires_at", "expires_at"),)


# The tally, decision and archive tables live in models_records.py; importing it here
# registers them on `Base.metadata` for create_all and Alembic wherever models is loaded.
import service.storage.models_records  # noqa: E402, F401
