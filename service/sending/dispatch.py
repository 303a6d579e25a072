"""The dispatcher: claim due messages in batches, send them, record what happened.

At most once. A batch is claimed in one statement and committed as `sending`
before any provider is called. Results go back in one bulk update. If the
process dies between the provider call and that update, the rows stay
`sending` until their lease runs out and then become `unknown`: they are
reconciled against the provider, never blindly resent. So nothing is handed to
a provider once the claim's lease is nearly over: the rest of the batch goes
back to `scheduled` instead, as if never claimed.

Provider budgets (issues 5 and 13, `service.sending.budget`): a limited channel
claims only what its sender can send in a couple of seconds, each send first
takes its sender's next slot for its segments (shared by every worker) and
sleeps until it, and when the slot is too far off, or the day's allowance for
its priority is spent, the channel's unsent rows go back to `scheduled`. Claims
take replies and confirmations (priority 0) before nudges, so one that comes
due behind a paced backlog goes out in the next small claim; once a sender has
spent the nudges' share of its day, only priority 0 is claimed on it.

Never late at the carrier: a nudge tells the provider how long it stays worth
sending (`validity_seconds`, Twilio's ValidityPeriod): the seconds left in the
subscriber's window, or to the nudge's own expiry if sooner. With less than a
second left it is not sent at all but `expired`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.messages.catalog import IMMEDIATE_KINDS
from service.messages.compose import compose
from service.messages.content import Content, TemplateError
from service.messages.lifecycle import PRIORITY_NOW
from service.messages.segments import count_segments
from service.pacing.policy import pacing_policy
from service.providers.base import Provider, ProviderError
from service.reporting.metrics import provider_send_timer, record_released
from service.sending import crashpoints
from service.sending.batch_clock import BatchClock
from service.sending.budget import RELEASE_LEASE, SendPacer, sender_limits
from service.sending.claimed import (
    Claimed,
    failure_outcome,
    load_claimed,
    validity_seconds,
    why_not_send,
    with_validity,
)
from service.sending.claims import (
    Outcome,
    claim_due,
    expire_overdue,
    record_outcomes,
    release_claims,
    release_expired_leases,
    replan_subscribers,
)
from service.sending.feedback import apply_send_errors
from service.sending.ratelimit import RateLimiter, shared_limiter
from service.sending.reconcile import ReconcileReport
from service.settings import Settings
from service.storage.models import MessageStatus

log = structlog.get_logger(__name__)

# Nothing is handed to a provider later than this before the claim's lease ends
# (plus the provider timeout): the send and the bulk update that records it must
# land inside the lease, or housekeeping marks the row `unknown` meanwhile.
LEASE_MARGIN_SECONDS = 5.0
# A paced batch (a limited channel, claimed a couple of seconds at a time) keeps
# claiming for this long before it returns, so one call keeps a sender busy.
PACED_RUN_SECONDS = 10.0
# Threads per process that send a free channel's claimed rows (see `_send_pool`).
SEND_THREADS = 4


@dataclass
class DispatchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    expired: int = 0
    unknown: int = 0
    reconcile: ReconcileReport = field(default_factory=ReconcileReport)
    more: bool = False  # stopped at its time budget with rows still due

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


@dataclass
class _Chunk:
    outcomes: list[Outcome] = field(default_factory=list)
    released: int = 0
    more_paced: bool = False  # a limited channel claimed its full share: more may be due


class Dispatcher:
    """Sends due messages through the providers it is given."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        providers: Mapping[ChannelKind, Provider],
        content: Content | None = None,
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.providers = providers
        self.content = content or Content()
        self.lease = timedelta(seconds=settings.send_lease_seconds)
        # The provider call and the result's update must fit in what is left;
        # a short lease keeps at least half of itself for sending.
        self.lease_margin = min(
            settings.provider_timeout_seconds + LEASE_MARGIN_SECONDS,
            settings.send_lease_seconds / 2,
        )
        self.policy = pacing_policy(settings)
        self.hasher = AddressHasher(settings.secret_key)
        limits = sender_limits(settings, providers)
        if limits and limiter is None:
            limiter = shared_limiter(settings.redis_url, settings.database_url)
        self.pacer = SendPacer(limits, limiter)

    def housekeeping(self, now: datetime) -> tuple[int, int]:
        """Expire overdue nudges and release dead leases. Returns (expired, unknown)."""
        with self.sessions() as session:
            expired = expire_overdue(session, now)
            unknown = release_expired_leases(session, now)
            session.commit()
        return expired, unknown

    def run_batch(
        self, now: datetime, *, limit: int | None = None, ids: Collection[int] | None = None
    ) -> list[Outcome]:
        """Claim one batch, send it, record the results. Returns one outcome per row.

        A limited channel is claimed a few rows at a time, one claim after
        another for up to `PACED_RUN_SECONDS`, so that each new claim puts a
        reply that came due meanwhile ahead of the nudges still waiting.
        Rows put back unsent have no outcome.
        """
        limit = limit or self.settings.dispatch_batch_size
        clock = BatchClock.begin(now)
        outcomes: list[Outcome] = []
        chunk_now = now
        while True:
            chunk = self._run_chunk(chunk_now, clock, limit - len(outcomes), ids)
            outcomes.extend(chunk.outcomes)
            if (
                not chunk.more_paced
                or chunk.released
                or len(outcomes) >= limit
                or clock.elapsed() >= PACED_RUN_SECONDS
            ):
                return outcomes
            # Later claims see what came due since (a reply, a confirmation).
            chunk_now = clock.now()

    def _run_chunk(
        self, now: datetime, clock: BatchClock, limit: int, ids: Collection[int] | None
    ) -> _Chunk:
        chunk = _Chunk()
        # The lease is measured from before the claim, on the monotonic clock.
        deadline = time.monotonic() + self.settings.send_lease_seconds - self.lease_margin
        with self.sessions() as session:
            claimed_ids, chunk.more_paced = self._claim(session, now, limit, ids)
            crashpoints.reach("claim")
            session.commit()
            if not claimed_ids:
                return chunk
            claimed = load_claimed(session, claimed_ids)
            session.commit()
        released = self._send_claimed(claimed, now, clock, deadline, chunk.outcomes)
        outcomes = chunk.outcomes
        with self.sessions() as session:
            connection = session.connection()
            record_outcomes(connection, outcomes, now)
            chunk.released = release_claims(connection, [i for _, _, i in released], now)
            # Permanent errors say something about the address (STOP, unreachable,
            # carrier filtering): the same feedback a status callback would give.
            apply_send_errors(
                session,
                [
                    (o.message_id, o.cause)
                    for o in outcomes
                    if o.status == MessageStatus.FAILED and o.cause
                ],
                self.hasher,
                now,
            )
            replan_subscribers(
                session,
                [
                    o.subscriber_id
                    for o in outcomes
                    if o.kind not in IMMEDIATE_KINDS and o.status != MessageStatus.SCHEDULED
                ],
                now,
            )
            session.commit()
        _count_released(released)
        return chunk

    def _send_claimed(
        self,
        claimed: list[Claimed],
        now: datetime,
        clock: BatchClock,
        deadline: float,
        outcomes: list[Outcome],
    ) -> list[tuple[str, str, int]]:
        """Send in claim order; returns what goes back unsent as (channel, reason, id).

        Once a channel has to stop (its sender's next slot too far off, the
        limiter unreachable, the lease nearly over) the rest of that channel in
        this batch goes back too; other channels carry on.
        """
        released: list[tuple[str, str, int]] = []
        stopped: dict[str, str] = {}
        paced = [item for item in claimed if item.recipient.channel in self.pacer.limits]
        free = [item for item in claimed if item.recipient.channel not in self.pacer.limits]
        # A free channel's sends overlap their waits for the provider in a few threads
        # (its only reason to stop is the lease, which each send checks for itself);
        # a paced channel goes one by one, in claim order, at its sender's pace.
        if free:
            results = _send_pool().map(
                lambda item: self._send_one(item, now, clock, deadline), free
            )
            for item, result in zip(free, results, strict=True):
                if isinstance(result, Outcome):
                    outcomes.append(result)
                else:
                    released.append((item.recipient.channel, result, item.recipient.message_id))
        for item in paced:
            channel = item.recipient.channel
            reason = stopped.get(channel)
            if reason is None:
                result = self._send_one(item, now, clock, deadline)
                if isinstance(result, Outcome):
                    outcomes.append(result)
                    continue
                reason = stopped[channel] = result
            released.append((channel, reason, item.recipient.message_id))
        return released

    def _claim(
        self, session: Session, now: datetime, limit: int, ids: Collection[int] | None
    ) -> tuple[list[int], bool]:
        """Claim due rows: free channels together, each paced one by its pace.

        A channel whose sender spent the nudges' share of its day is claimed for
        replies and confirmations only. Returns the ids and whether a paced
        channel filled its share.
        """
        held = {channel for channel in self.providers if self.pacer.nudges_held(channel)}
        paced = {
            channel: min(size, limit)
            for channel in self.providers
            if (size := self.pacer.claim_size(channel)) is not None
        }
        claimed: list[int] = []
        free = [channel for channel in self.providers if channel not in paced]
        for only_now in (False, True):
            group = [channel for channel in free if (channel in held) == only_now]
            if group:
                claimed += claim_due(
                    session,
                    now,
                    limit - len(claimed),
                    self.lease,
                    ids=ids,
                    channels=group,
                    max_priority=PRIORITY_NOW if only_now else None,
                )
        more = False
        for channel, size in paced.items():
            taken = claim_due(
                session,
                now,
                size,
                self.lease,
                ids=ids,
                channels=[channel],
                max_priority=PRIORITY_NOW if channel in held else None,
            )
            claimed += taken
            more = more or len(taken) == size
        return claimed, more

    def _send_one(
        self, item: Claimed, now: datetime, clock: BatchClock, deadline: float
    ) -> Outcome | str:
        """Send one claimed row: its outcome, or the reason it goes back unsent.

        It goes back when the lease is nearly over, when its sender's next slot
        is too far off, or when the shared limiter cannot be reached.
        """
        recipient = item.recipient
        outcome = item.outcome
        refusal = why_not_send(item, now, self.policy)
        if refusal is not None:
            status, reason = refusal
            return outcome(status, detail=reason)
        try:
            message = compose(self.settings, self.content, recipient, item.template, item.body)
        except TemplateError as exc:
            log.error("template_failed", message_id=recipient.message_id, error=str(exc))
            return outcome(MessageStatus.FAILED, error_code="template", detail=str(exc)[:300])
        provider = self.providers[recipient.channel]
        patience = deadline - time.monotonic()
        if patience <= 0:
            return RELEASE_LEASE
        segments = count_segments(message.body) if recipient.channel == "sms" else 1
        held = self.pacer.wait_for_slot(
            recipient.channel, patience, segments=segments, priority=item.priority
        )
        if held is not None:
            return held
        if recipient.channel in self.pacer.limits:
            # It may have slept for its slot: the window may have closed meanwhile.
            now = clock.now()
            refusal = why_not_send(item, now, self.policy)
            if refusal is not None:
                status, reason = refusal
                return outcome(status, detail=reason)
        timed = with_validity(message, validity_seconds(item, clock.now(), self.policy))
        if timed is None:
            return outcome(MessageStatus.EXPIRED, detail="no_validity_left")
        crashpoints.reach("before_send")
        try:
            with provider_send_timer(provider.name, recipient.channel):
                provider_id = provider.send(timed)
        except ProviderError as exc:
            return failure_outcome(item, exc, now, provider.name)
        accepted_at = clock.now()
        crashpoints.reach("after_send")
        log.info("message_sent", message_id=recipient.message_id, provider=provider.name)
        return outcome(
            MessageStatus.SENT, provider_id=provider_id, detail=provider.name, at=accepted_at
        )


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _send_pool() -> ThreadPoolExecutor:
    """This process's send threads (made after a fork: a Celery child has its own).

    `SEND_THREADS` like the SDK's own ceiling on this kind of machine (PERFORMANCE.md:
    2 processes × 4 threads): while one send waits for the provider's answer,
    another renders or parses.
    """
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="send"))
    return _POOL[1]


def _count_released(released: list[tuple[str, str, int]]) -> None:
    counts = Counter((channel, reason) for channel, reason, _ in released)
    for (channel, reason), count in counts.items():
        record_released(channel, reason, count)
        log.info("claims_released", channel=channel, reason=reason, count=count)
