"""Reconciliation: settle `unknown` messages by asking the provider what it accepted.

A message is `unknown` when we cannot tell whether the provider took it: the
worker died between the claim and recording the result (its lease ran out), or
the provider call timed out or lost its connection. Resending blindly could
text a person twice, the worst thing Steady can do; never settling loses the
message. So once the row has been unknown for a settle delay (a provider's
records can lag a moment behind its answer), a reconciler claims it, asks the
provider, and settles it:

- the provider has it: `sent` with the provider's id and time (or `failed` /
  `undelivered` with the code, when the provider says so), so later status
  callbacks and events find the row;
- the provider has no record of it: safe to send again, so back to `scheduled`
  now, unless it is past its expiry (`expired`), out of attempts (`failed`), or a
  nudge the planner has since replaced (`cancelled`, "superseded");
- the provider cannot tell (down, a copy that is not recognisably ours, a
  provider without lookups): it stays `unknown` and is asked again later.

Claiming uses the row's `lease_until` while it stays `unknown` (a conditional
UPDATE, with `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two reconcilers never
work on the same row, and a status callback that arrives meanwhile still moves
it forward: every settle is conditional on the row being unknown and ours.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.messages.compose import compose
from service.messages.content import Content, TemplateError
from service.providers.base import AcceptanceLookup, AcceptedCopy, Provider, ProviderError
from service.sending.settle import (
    NOT_ACCEPTED,
    UnknownRow,
    leave_unknown,
    load_unknown,
    settle_as,
    settle_found,
    settle_not_found,
)
from service.settings import Settings
from service.storage.models import Message, MessageStatus

log = structlog.get_logger(__name__)

# How long a row stays `unknown` before the provider is asked is a setting,
# `STEADY_RECONCILE_AFTER_SECONDS` (60 s): a timed-out request may still be landing,
# and Twilio's message list (SendGrid's activity feed even more) can lag a moment.
RECONCILE_BATCH_SIZE = 100
# How long one reconciler holds the rows it claimed before another may take them.
RECONCILE_HOLD = timedelta(minutes=5)
# Our clock and the provider's may disagree by this much; the lookup window opens
# this long before the message could first have been sent.
CLOCK_SLACK = timedelta(minutes=15)
# A row the provider's records cannot settle (a copy that is not recognisably ours,
# no lookup at all) is asked about again this often, not on every pass.
UNDECIDED_RECHECK = timedelta(minutes=15)
# A pass stops asking after this long (each lookup can take the provider timeout);
# the rows it did not reach are free for the next pass.
RECONCILE_TIME_BUDGET_SECONDS = 10.0

# Reasons to stay unknown (settled outcomes are in `service.sending.settle`).
LOOKUP_FAILED = "lookup_failed"
AMBIGUOUS = "ambiguous"
UNSUPPORTED = "unsupported"
UNRENDERABLE = "unrenderable"
DEFERRED = "deferred"  # not asked this pass (its provider is down, or out of time)


@dataclass
class ReconcileReport:
    """What one pass did: message id to outcome, for settled rows and for rows left unknown."""

    settled: dict[int, str] = field(default_factory=dict)
    left_unknown: dict[int, str] = field(default_factory=dict)

    @property
    def claimed(self) -> int:
        return len(self.settled) + len(self.left_unknown)

    def counts(self) -> dict[str, int]:
        """Outcome counts, for the log line: ids only, never addresses or bodies."""
        counts = Counter(self.settled.values())
        counts.update(f"unknown_{reason}" for reason in self.left_unknown.values())
        return dict(sorted(counts.items()))


def settle_delay(settings: Settings, settle_after: timedelta | None = None) -> timedelta:
    """`settle_after`, else the `STEADY_RECONCILE_AFTER_SECONDS` setting."""
    if settle_after is not None:
        return settle_after
    return timedelta(seconds=settings.reconcile_after_seconds)


def reconcile_unknown(
    sessions: sessionmaker[Session],
    providers: Mapping[ChannelKind, Provider],
    settings: Settings,
    content: Content,
    now: datetime,
    *,
    limit: int = RECONCILE_BATCH_SIZE,
    settle_after: timedelta | None = None,
) -> ReconcileReport:
    """Claim up to `limit` settled-down `unknown` rows, ask their providers, settle each."""
    report = ReconcileReport()
    delay = settle_delay(settings, settle_after)
    hasher = AddressHasher(settings.secret_key)
    hold_until = now + RECONCILE_HOLD
    with sessions() as session:
        ids = claim_unknown(session, now, limit, delay, hold_until)
        session.commit()
        if not ids:
            return report
        rows = load_unknown(session, ids)
        session.commit()
    started = time.monotonic()
    down: set[str] = set()
    for row in rows:
        # A dispatch pass waits for this: a provider that is down is asked once per
        # pass, not once per row, and the pass stops asking after its time budget.
        if row.channel in down or time.monotonic() - started > RECONCILE_TIME_BUDGET_SECONDS:
            with sessions() as session:
                leave_unknown(session, row, now + delay if row.channel in down else now)
                session.commit()
            report.left_unknown[row.id] = DEFERRED
            continue
        outcome, settled = _reconcile_one(
            sessions, providers, settings, content, row, now, delay, hasher
        )
        (report.settled if settled else report.left_unknown)[row.id] = outcome
        if outcome == LOOKUP_FAILED:
            down.add(row.channel)
    log.info("reconcile_pass", claimed=report.claimed, **report.counts())
    return report


def claim_unknown(
    session: Session, now: datetime, limit: int, settle_after: timedelta, hold_until: datetime
) -> list[int]:
    """Hold up to `limit` unknown rows older than `settle_after` until `hold_until`.

    The row stays `unknown` (a status callback may still move it on); the hold
    is `lease_until`, which nothing else reads on unknown rows. `updated_at` is
    kept: it is when the row became unknown, the age the settle delay counts.
    """
    free = or_(Message.lease_until.is_(None), Message.lease_until < now)
    candidates = (
        select(Message.id)
        .where(Message.status == MessageStatus.UNKNOWN, Message.updated_at <= now - settle_after)
        .where(free)
        .order_by(Message.priority, Message.updated_at, Message.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(Message)
        .where(Message.id.in_(candidates.scalar_subquery()))
        .where(Message.status == MessageStatus.UNKNOWN, free)
        .values(lease_until=hold_until, updated_at=Message.updated_at)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(claimed)


def _reconcile_one(
    sessions: sessionmaker[Session],
    providers: Mapping[ChannelKind, Provider],
    settings: Settings,
    content: Content,
    row: UnknownRow,
    now: datetime,
    retry_after: timedelta,
    hasher: AddressHasher,
) -> tuple[str, bool]:
    """Settle one claimed row in its own transaction; (outcome, whether it settled)."""
    provider = providers.get(row.channel)
    with sessions() as session:
        if row.provider_id:
            # A slow worker recorded its send after the lease ran out: the
            # provider's id is already here.
            found = AcceptedCopy(row.provider_id, same_content=True, accepted_at=row.sent_at)
            outcome = settle_found(session, row, found, now, None, hasher)
        elif row.recipient is None:
            outcome = settle_as(
                session, row, now, MessageStatus.FAILED, NOT_ACCEPTED, "no address to send to"
            )
        else:
            reason = _ask(session, provider, settings, content, row, now)
            if isinstance(reason, AcceptedCopy):
                outcome = settle_found(session, row, reason, now, provider, hasher)
            elif reason is None:
                outcome = settle_not_found(session, row, now)
            else:
                # A provider that is down is asked again after the settle delay.
                recheck = retry_after if reason == LOOKUP_FAILED else UNDECIDED_RECHECK
                leave_unknown(session, row, now + max(retry_after, recheck))
                session.commit()
                log.warning("reconcile_undecided", message_id=row.id, reason=reason)
                return reason, False
        session.commit()
    log.info("reconciled", message_id=row.id, outcome=outcome)
    return outcome, True


def _ask(
    session: Session,
    provider: Provider | None,
    settings: Settings,
    content: Content,
    row: UnknownRow,
    now: datetime,
) -> AcceptedCopy | str | None:
    """The provider's copy of this message, None if it has none, or why it cannot tell."""
    if not isinstance(provider, AcceptanceLookup):
        return UNSUPPORTED
    assert row.recipient is not None
    try:
        # Rendered exactly as the dispatcher rendered it: Twilio is matched on the body.
        message = compose(settings, content, row.recipient, row.template)
    except TemplateError:
        return UNRENDERABLE
    try:
        # A send is never claimed before it is due: that bounds the window from below.
        copies = provider.find_accepted(message, since=row.scheduled_for - CLOCK_SLACK)
    except ProviderError as exc:
        log.warning(
            "reconcile_lookup_failed", message_id=row.id, code=exc.code, http_status=exc.http_status
        )
        return LOOKUP_FAILED
    except Exception as exc:
        # The type only: SDK messages can carry request URLs, and those carry addresses.
        log.error("reconcile_lookup_failed", message_id=row.id, error=type(exc).__name__)
        return LOOKUP_FAILED
    owned = _owned_elsewhere(session, row.id, {copy.provider_id for copy in copies})
    unclaimed = [copy for copy in copies if copy.provider_id not in owned]
    ours = [copy for copy in unclaimed if copy.same_content]
    if ours:
        return min(ours, key=lambda copy: (copy.accepted_at is None, copy.accepted_at or now))
    if unclaimed:
        # Something else went to this person in the window and no row of ours owns
        # it; it might be this message, altered in transit. Resending could be a
        # second text: wait until it is owned or a person looks.
        return AMBIGUOUS
    return None


def _owned_elsewhere(session: Session, message_id: int, provider_ids: set[str]) -> set[str]:
    """Provider ids another of our rows already holds: those copies are not this message.

    This is what tells two identical texts apart (a confirmation sent twice, the
    same reply on two days): each copy belongs to at most one row.
    """
    if not provider_ids:
        return set()
    return {
        str(provider_id)
        for provider_id in session.scalars(
            select(Message.provider_id).where(
                Message.provider_id.in_(sorted(provider_ids)), Message.id != message_id
            )
        )
    }
