"""Each sender's budget as the dispatcher and the webhook spend it (issue 13).

`service.sending.ratelimit` keeps the counts; this module says what counts against
which sender and who may spend what:

- Every SMS costs its segments (`service.messages.segments`), an email one.
- A sender's day (`STEADY_SMS_SEGMENTS_PER_DAY`, a rolling 24 h) is shared by
  nudges, replies and confirmations, but nudges stop at `NUDGE_SHARE` of it: the
  last tenth is kept for what answers a person (`PRIORITY_NOW`). A nudge that
  finds its share spent stays `scheduled`; it goes later the same window if the
  day frees up, or expires with its window, never late.
- A TwiML reply goes in the webhook's answer, so nothing can hold it back: it is
  charged afterwards (`charge_reply`), and its segments come off the same
  per-second schedule and day count the dispatcher uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from service.messages.lifecycle import PRIORITY_NOW
from service.providers.outbox import OUTBOX
from service.providers.twilio.codes import PROVIDER as TWILIO
from service.reporting.metrics import record_rate_limit_wait, record_segments
from service.sending.ratelimit import RateLimiter, RateLimiterUnavailable, shared_limiter

if TYPE_CHECKING:
    from service.channels import ChannelKind
    from service.providers.base import Provider
    from service.settings import Settings

log = structlog.get_logger(__name__)

# Nudges may use this much of a sender's day; the rest is for replies and confirmations.
NUDGE_SHARE = 0.9
# A limited channel claims what its sender can send in this long, so a big batch
# is never held in `sending` behind its own pace and a reply due meanwhile is
# claimed by the next, small claim.
CLAIM_AHEAD_SECONDS = 2.0
# A send sleeps for its slot up to this long; a later slot means the sender is
# busy with other workers' claims, so the rest of the channel goes back.
MAX_SLOT_WAIT_SECONDS = 5.0
# Why claimed rows went back to `scheduled` unsent (a metrics label and a log field).
RELEASE_PACED = "paced"
RELEASE_LEASE = "lease"
RELEASE_UNAVAILABLE = "unavailable"
RELEASE_DAY_SPENT = "day_spent"


@dataclass(frozen=True)
class SenderLimit:
    """One channel's budget: the sender it counts against, segments a second and a day."""

    sender: str
    rate: float  # segments a second; 0 = no per-second limit
    per_day: int = 0  # segments in any 24 h; 0 = no daily limit

    @property
    def claim_size(self) -> int | None:
        """Rows to claim at a time: what the sender sends in a short while (None: no pace)."""
        return max(1, math.ceil(self.rate * CLAIM_AHEAD_SECONDS)) if self.rate > 0 else None

    def allowance(self, priority: int) -> int:
        """How far into the day's budget a message of `priority` may go (0 = no limit)."""
        if self.per_day <= 0:
            return 0
        if priority <= PRIORITY_NOW:
            return self.per_day
        return max(1, math.floor(self.per_day * NUDGE_SHARE))


def sms_sender(settings: Settings) -> str:
    """What the carrier counts for SMS: the From number, else the Messaging Service."""
    return settings.twilio_from_number or settings.twilio_messaging_service_sid or "default"


def sender_limits(
    settings: Settings, providers: Mapping[ChannelKind, Provider]
) -> dict[str, SenderLimit]:
    """Each limited channel's sender and budget (a free channel or the outbox: none).

    The sender is what the carrier counts: the Twilio From number, else the
    Messaging Service (the Twilio provider prefers the number too), and the email
    From address. One key per sender, so every worker sending as it shares it.
    """
    budgets = {
        "sms": (settings.sms_rate_per_second, settings.sms_segments_per_day, sms_sender(settings)),
        "email": (settings.email_rate_per_second, 0, settings.email_from or "default"),
    }
    limits: dict[str, SenderLimit] = {}
    for channel, provider in providers.items():
        rate, per_day, sender = budgets.get(channel, (0.0, 0, "default"))
        # The outbox reaches no carrier: never limited.
        if (rate > 0 or per_day > 0) and provider.name != OUTBOX:
            limits[channel] = SenderLimit(f"{channel}:{provider.name}:{sender}", rate, per_day)
    return limits


class SendPacer:
    """Spends one dispatcher's sends from its channels' budgets; free channels pass."""

    def __init__(
        self,
        limits: Mapping[str, SenderLimit],
        limiter: RateLimiter | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limits and limiter is None:
            raise ValueError("limited channels need a rate limiter")
        self.limits = dict(limits)
        self.limiter = limiter
        self._sleep = sleep

    def claim_size(self, channel: str) -> int | None:
        """Rows of `channel` to claim at a time; None when the channel is not paced."""
        limit = self.limits.get(channel)
        return None if limit is None else limit.claim_size

    def nudges_held(self, channel: str) -> bool:
        """Whether the channel's nudges must wait: its sender spent the nudges' share today.

        Asked once per claim, so a spent day is not claimed and put back row by
        row. An unreachable limiter holds nothing here; the send itself then stops.
        """
        limit = self.limits.get(channel)
        if limit is None or limit.per_day <= 0 or self.limiter is None:
            return False
        try:
            used = self.limiter.used_today(limit.sender)
        except RateLimiterUnavailable:
            return False
        return used >= limit.allowance(priority=PRIORITY_NOW + 1)

    def wait_for_slot(
        self, channel: str, patience: float, *, segments: int = 1, priority: int = PRIORITY_NOW
    ) -> str | None:
        """Take `channel`'s next slot for `segments` and sleep until it: None means send now.

        Otherwise the reason the message must go back unsent: the day's allowance
        for its priority is spent, the slot is more than `patience` seconds off (at
        most `MAX_SLOT_WAIT_SECONDS`), or the shared limiter cannot be reached.
        """
        limit = self.limits.get(channel)
        if limit is None or self.limiter is None:
            return None
        try:
            reservation = self.limiter.reserve(
                limit.sender,
                limit.rate,
                min(patience, MAX_SLOT_WAIT_SECONDS),
                segments=segments,
                day_allowance=limit.allowance(priority),
            )
        except RateLimiterUnavailable:
            return RELEASE_UNAVAILABLE
        if reservation.day_spent:
            return RELEASE_DAY_SPENT
        if not reservation.granted:
            return RELEASE_PACED
        record_rate_limit_wait(channel, reservation.wait)
        record_segments(channel, segments)
        if reservation.wait > 0:
            self._sleep(reservation.wait)
        return None


class ReplyCharger:
    """Charges TwiML replies to the SMS sender's budget (the webhook's side)."""

    def __init__(self, limit: SenderLimit | None, limiter: RateLimiter | None) -> None:
        self.limit = limit
        self.limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplyCharger:
        """The sender replies count against: Twilio's, when SMS goes through Twilio."""
        if not settings.twilio_enabled:
            return cls(None, None)
        rate, per_day = settings.sms_rate_per_second, settings.sms_segments_per_day
        if rate <= 0 and per_day <= 0:
            return cls(None, None)
        limit = SenderLimit(f"sms:{TWILIO}:{sms_sender(settings)}", rate, per_day)
        return cls(limit, shared_limiter(settings.redis_url, settings.database_url))

    def charge(self, segments: int) -> None:
        """Take a reply's segments from the budget; never fails (the reply has gone)."""
        record_segments("sms", segments, reply=True)
        if self.limit is None or self.limiter is None:
            return
        try:
            self.limiter.charge(self.limit.sender, self.limit.rate, segments)
        except RateLimiterUnavailable:
            log.warning("reply_not_charged", segments=segments)
