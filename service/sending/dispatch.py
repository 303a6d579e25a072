"""The dispatcher: claim due messages in batches, send them, record what happened.

At most once. A batch is claimed in one statement and committed as `sending`
before any provider is called. Results go back in one bulk update. If the
process dies between the provider call and that update, the rows stay
`sending` until their lease runs out and then become `unknown`: they are
reconciled against the provider, never blindly resent. So nothing is handed to
a provider once the claim's lease is nearly over: the rest of the batch goes
back to `scheduled` instead, as if never claimed.

Provider rate limits (issue 5, `service.sending.ratelimit`): a limited channel claims
only what its sender can send in a couple of seconds, each send first takes its
sender's next slot (shared by every worker) and sleeps until it, and when the
slot is too far off the channel's unsent rows go back to `scheduled`. Claims
take replies and confirmations (priority 0) before nudges, so one that comes
due behind a paced backlog goes out in the next small claim.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.channels import ChannelKind
from service.messages.catalog import IMMEDIATE_KINDS, Kind
from service.messages.compose import Recipient, compose, renders_discreet
from service.messages.content import Content, TemplateError
from service.messages.lifecycle import MAX_SEND_ATTEMPTS
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy
from service.pacing.window import in_sending_window, split_zones
from service.providers.base import Provider, ProviderError
from service.reporting.metrics import provider_send_timer, record_released
from service.sending import crashpoints
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
from service.sending.ratelimit import (
    RELEASE_LEASE,
    RateLimiter,
    SendPacer,
    sender_limits,
    shared_limiter,
)
from service.sending.reconcile import ReconcileReport
from service.settings import Settings
from service.storage.models import Channel, ChannelStatus, Message, MessageStatus, Subscriber

log = structlog.get_logger(__name__)

MAX_RETRY_DELAY = timedelta(minutes=15)  # INTERFACE.md §4: backoff at most 15 minutes
FIRST_RETRY_DELAY = timedelta(minutes=1)
# No answer, or the connection broke after the request went out: the provider may
# have accepted it. Resending could text a person twice, so the row goes to
# reconciliation instead. ("connection", no connection made at all, is retried.)
AMBIGUOUS_ERROR_CODES = frozenset({"timeout", "connection_lost"})
# Nothing is handed to a provider later than this before the claim's lease ends
# (plus the provider timeout): the send and the bulk update that records it must
# land inside the lease, or housekeeping marks the row `unknown` meanwhile.
LEASE_MARGIN_SECONDS = 5.0
# A paced batch (a limited channel, claimed a couple of seconds at a time) keeps
# claiming for this long before it returns, so one call keeps a sender busy.
PACED_RUN_SECONDS = 10.0
# A `now` this close to the wall clock is the real time (see `_BatchClock`).
LIVE_CLOCK_TOLERANCE = timedelta(minutes=1)


@dataclass
class DispatchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    expired: int = 0
    unknown: int = 0
    reconcile: ReconcileReport = field(default_factory=ReconcileReport)
    more: bool = False  # stopped at its time budget with rows still due

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def retry_delay(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff from one minute, at least Retry-After, at most 15 minutes."""
    delay: timedelta = FIRST_RETRY_DELAY * (4 ** max(attempts - 1, 0))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return min(delay, MAX_RETRY_DELAY)


@dataclass(frozen=True)
class _Claimed:
    recipient: Recipient
    subscriber_id: int | None
    kind: str
    template: str
    rule: str
    attempts: int
    expires_at: datetime | None
    channel_status: str
    timezone: str
    candidate_zones: tuple[str, ...]
    hours: tuple[int, int]
    paused_until: datetime | None
    flagged: bool
    body: str | None = None  # rendered when queued (an operator's reply); else rendered here


def _load_claimed(session: Session, ids: list[int]) -> list[_Claimed]:
    rows = session.execute(
        select(
            Message.id,
            Message.subscriber_id,
            Message.channel_id,
            Message.channel,
            Message.kind,
            Message.template,
            Message.rule,
            Message.attempts,
            Message.expires_at,
            Channel.address,
            Channel.status,
            Channel.consent_method,
            Subscriber.discreet,
            Subscriber.cadence_per_week,
            Subscriber.timezone,
            Subscriber.timezone_candidates,
            Subscriber.hour_start,
            Subscriber.hour_end,
            Subscriber.paused_until,
            Subscriber.flagged_at,
            Message.body,
        )
        .join(Channel, Channel.id == Message.channel_id)
        .join(Subscriber, Subscriber.id == Message.subscriber_id)
        .where(Message.id.in_(ids))
        .order_by(Message.priority, Message.scheduled_for, Message.id)
    ).all()
    return [
        _Claimed(
            recipient=Recipient(
                message_id=row.id,
                channel_id=row.channel_id,
                channel=row.channel,
                address=row.address,
                discreet=renders_discreet(row.kind, row.discreet, row.consent_method),
                cadence_per_week=row.cadence_per_week,
            ),
            subscriber_id=row.subscriber_id,
            kind=row.kind,
            template=row.template,
            rule=row.rule,
            attempts=row.attempts,
            expires_at=row.expires_at,
            channel_status=row.status,
            timezone=row.timezone,
            candidate_zones=split_zones(row.timezone_candidates),
            hours=(row.hour_start, row.hour_end),
            paused_until=row.paused_until,
            flagged=row.flagged_at is not None,
            body=row.body,
        )
        for row in rows
    ]


def _why_not_send(item: _Claimed, now: datetime, policy: PacingPolicy) -> tuple[str, str] | None:
    """A last guard at send time: (status, reason) if this message must not go now."""
    if item.kind == Kind.CONFIRM:
        if item.channel_status != ChannelStatus.PENDING:
            return MessageStatus.CANCELLED, f"channel_{item.channel_status}"
        return None
    if item.channel_status != ChannelStatus.ACTIVE:
        return MessageStatus.CANCELLED, f"channel_{item.channel_status}"
    if item.kind in IMMEDIATE_KINDS:
        return None
    if item.flagged:
        return MessageStatus.CANCELLED, "flagged"
    if item.paused_until is not None and item.paused_until > now:
        return MessageStatus.CANCELLED, "paused"
    if item.expires_at is not None and item.expires_at < now:
        return MessageStatus.EXPIRED, "missed_window"
    if not in_sending_window(
        now, item.timezone, item.hours, policy, candidates=item.candidate_zones
    ):
        return MessageStatus.EXPIRED, "outside_window"
    return None


@dataclass(frozen=True)
class _BatchClock:
    """The caller's `now`, moved on by the monotonic clock while the batch runs.

    A worker passes the current time: each send's `sent_at` is then its real
    handoff, measured from `now` on the monotonic clock (unmoved by wall-clock
    jumps). A `now` far from the wall clock simulates another time (tests,
    `steady tick --now`): real seconds do not belong on that timeline, and the
    whole pass happens at `now`.
    """

    start: datetime
    started: float
    live: bool

    @classmethod
    def begin(cls, now: datetime) -> _BatchClock:
        live = abs(datetime.now(UTC) - now) <= LIVE_CLOCK_TOLERANCE
        return cls(now, time.monotonic(), live)

    def now(self) -> datetime:
        if not self.live:
            return self.start
        return self.start + timedelta(seconds=time.monotonic() - self.started)

    def elapsed(self) -> float:
        """Real seconds since the batch began (for its time budget)."""
        return time.monotonic() - self.started


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
        clock = _BatchClock.begin(now)
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
        self, now: datetime, clock: _BatchClock, limit: int, ids: Collection[int] | None
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
            claimed = _load_claimed(session, claimed_ids)
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
                self.settings.secret_key.get_secret_value(),
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
        claimed: list[_Claimed],
        now: datetime,
        clock: _BatchClock,
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
        for item in claimed:
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
        """Claim due rows: free channels together, each limited one by its pace.

        Returns the ids and whether a limited channel filled its share.
        """
        paced = {
            channel: min(size, limit)
            for channel in self.providers
            if (size := self.pacer.claim_size(channel)) is not None
        }
        if not paced:
            return claim_due(session, now, limit, self.lease, ids=ids), False
        free = [channel for channel in self.providers if channel not in paced]
        claimed = claim_due(session, now, limit, self.lease, ids=ids, channels=free) if free else []
        more = False
        for channel, size in paced.items():
            taken = claim_due(session, now, size, self.lease, ids=ids, channels=[channel])
            claimed += taken
            more = more or len(taken) == size
        return claimed, more

    def _send_one(
        self, item: _Claimed, now: datetime, clock: _BatchClock, deadline: float
    ) -> Outcome | str:
        """Send one claimed row: its outcome, or the reason it goes back unsent.

        It goes back when the lease is nearly over, when its sender's next slot
        is too far off, or when the shared limiter cannot be reached.
        """
        recipient = item.recipient

        def outcome(status: str, **extra: Any) -> Outcome:
            return Outcome(
                message_id=recipient.message_id,
                subscriber_id=item.subscriber_id,
                channel=recipient.channel,
                kind=item.kind,
                template=item.template,
                rule=item.rule,
                status=status,
                **extra,
            )

        refusal = _why_not_send(item, now, self.policy)
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
        held = self.pacer.wait_for_slot(recipient.channel, patience)
        if held is not None:
            return held
        if recipient.channel in self.pacer.limits:
            # It may have slept for its slot: the window may have closed meanwhile.
            now = clock.now()
            refusal = _why_not_send(item, now, self.policy)
            if refusal is not None:
                status, reason = refusal
                return outcome(status, detail=reason)
        crashpoints.reach("before_send")
        try:
            with provider_send_timer(provider.name, recipient.channel):
                provider_id = provider.send(message)
        except ProviderError as exc:
            return self._failure(item, exc, now, outcome, provider.name)
        accepted_at = clock.now()
        crashpoints.reach("after_send")
        log.info("message_sent", message_id=recipient.message_id, provider=provider.name)
        return outcome(
            MessageStatus.SENT, provider_id=provider_id, detail=provider.name, at=accepted_at
        )

    def _failure(
        self,
        item: _Claimed,
        exc: ProviderError,
        now: datetime,
        outcome: Callable[..., Outcome],
        provider: str,
    ) -> Outcome:
        log.warning(
            "send_failed",
            message_id=item.recipient.message_id,
            provider=provider,
            code=exc.code,
            http_status=exc.http_status,
            permanent=exc.permanent,
            attempt=item.attempts,
        )
        detail = str(exc)[:300]
        if exc.permanent:
            return outcome(
                MessageStatus.FAILED, error_code=exc.code, detail=detail, cause=exc.cause
            )
        if exc.code in AMBIGUOUS_ERROR_CODES:
            return outcome(MessageStatus.UNKNOWN, error_code=exc.code, detail=detail)
        if item.attempts >= MAX_SEND_ATTEMPTS:
            return outcome(
                MessageStatus.FAILED, error_code=exc.code or "transient", detail="retries exhausted"
            )
        retry_at = now + retry_delay(item.attempts, exc.retry_after)
        if item.expires_at is not None and retry_at > item.expires_at:
            return outcome(MessageStatus.EXPIRED, error_code=exc.code, detail="retry after window")
        return outcome(
            MessageStatus.SCHEDULED, error_code=exc.code, detail=detail, retry_at=retry_at
        )


def _count_released(released: list[tuple[str, str, int]]) -> None:
    counts = Counter((channel, reason) for channel, reason, _ in released)
    for (channel, reason), count in counts.items():
        record_released(channel, reason, count)
        log.info("claims_released", channel=channel, reason=reason, count=count)
