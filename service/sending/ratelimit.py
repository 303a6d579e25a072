"""Provider rate limits per sender, shared by every worker through Redis (issue 5).

Carriers and providers count messages per sender: a US long code takes about one
SMS a second, a short code about a hundred. Steady spaces sends with the generic
cell rate algorithm in its virtual-scheduling form (GCRA, ITU-T I.371): one number
per sender, the theoretical arrival time (TAT) of the next send. A caller
reserves the slot at `max(now, TAT)` and moves TAT one interval past it, then
sleeps until its slot. The burst is one message, so any two slots are at least
one interval apart, and any window of W seconds holds at most `rate × W + 1`
slots: 61 in a minute at 1/s, well inside the issue's "limit plus 5%".

A reservation whose wait would exceed the caller's `max_wait` is refused and
changes nothing, so a caller that gives up leaves no hole in the schedule. A
slot that was reserved and then not used is only lost capacity, never a burst.

With Redis (`STEADY_REDIS_URL`, else the broker) the reservation is one Lua
script, atomic on the server, timed by the server's own clock (`TIME`): every
process on every host shares one schedule, whatever the workers' clocks say (a
step of the Redis host's clock back pauses sends that long; forward, it frees
at most the slots then reserved). Without
Redis (`steady run`, `steady tick`, eager Celery) the same arithmetic runs in
process under a lock, on the monotonic clock.

Each sender holds at most one reserved slot per sleeping send, so if Redis loses
the key (a restart without persistence, a failover, a FLUSHDB) the schedule
restarts at "now" and the overlap is at most one message per send then asleep.

When Redis cannot be reached the limiter raises `RateLimiterUnavailable`. The
dispatcher then sends nothing on that channel (carriers filter senders that
burst past their registered rate, so "not now" is the safe answer), puts the
rows back for the next tick, and this module logs one warning per outage.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from service.channels import ChannelKind
from service.reporting.metrics import record_rate_limit_wait

if TYPE_CHECKING:
    from service.providers.base import Provider
    from service.settings import Settings

log = structlog.get_logger(__name__)

KEY_PREFIX = "steady:ratelimit:"
OUTBOX_PROVIDER = "outbox"  # writes locally, reaches no carrier: never limited
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
MICROSECONDS = 1_000_000
# Redis calls are on the send path: fail fast instead of holding a batch's lease.
REDIS_TIMEOUT_SECONDS = 2.0
# An idle sender's key outlives its last slot by this much, then Redis drops it.
IDLE_KEY_TTL_MS = 60_000

# KEYS[1] the sender's TAT (integer microseconds of the Redis clock).
# ARGV[1] interval between sends, µs; ARGV[2] the longest wait the caller accepts, µs;
# ARGV[3] how long the key outlives its last slot, ms.
# Returns {granted (1 or 0), wait in µs}. Lua numbers are doubles: integer
# microseconds since 1970 (~1.8e15) are exact below 2^53 (~9e15).
GCRA_RESERVE_LUA = """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, tat)
local wait = slot - now
if wait > max_wait then
  return {0, wait}
end
local next_tat = slot + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
           'PX', math.floor((next_tat - now) / 1000) + tonumber(ARGV[3]))
return {1, wait}
"""


class RateLimiterUnavailable(RuntimeError):
    """The shared limiter cannot be reached; nothing may be sent on its account."""


@dataclass(frozen=True)
class Reservation:
    """A slot, or a refusal. `wait` is seconds until the slot (or until one would be)."""

    granted: bool
    wait: float


class RateLimiter(Protocol):
    """Reserves send slots for a sender; shared by whoever shares the limiter."""

    def reserve(self, sender: str, rate: float, max_wait: float) -> Reservation: ...


def interval_us(rate: float) -> int:
    """Microseconds between two sends at `rate` per second, rounded up (never faster)."""
    if rate <= 0:
        raise ValueError("a rate limit must be positive")
    return max(1, math.ceil(MICROSECONDS / rate))


def gcra_reserve(
    tat_us: int, now_us: int, interval: int, max_wait_us: int
) -> tuple[Reservation, int]:
    """The reservation arithmetic (the Lua script's twin): (reservation, new TAT)."""
    slot = max(now_us, tat_us)
    wait = slot - now_us
    if wait > max_wait_us:
        return Reservation(granted=False, wait=wait / MICROSECONDS), tat_us
    return Reservation(granted=True, wait=wait / MICROSECONDS), slot + interval


class LocalRateLimiter:
    """The limiter for one process (no Redis): threads share it, processes do not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}

    def reserve(self, sender: str, rate: float, max_wait: float) -> Reservation:
        with self._lock:
            now_us = time.monotonic_ns() // 1000
            reservation, self._tat[sender] = gcra_reserve(
                self._tat.get(sender, 0), now_us, interval_us(rate), _us(max_wait)
            )
        return reservation


class RedisRateLimiter:
    """The limiter shared through Redis by every process that uses the same keys."""

    def __init__(self, client: Any, prefix: str = KEY_PREFIX) -> None:
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(GCRA_RESERVE_LUA)
        self._down = False

    @classmethod
    def from_url(cls, url: str, prefix: str = KEY_PREFIX) -> RedisRateLimiter:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from service.storage.redis_url import redis_client

        client = redis_client(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            # One immediate retry covers a pooled connection that went stale
            # (Redis restarted). A retried reservation may take a second slot:
            # lost capacity, never a burst.
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix)

    def reserve(self, sender: str, rate: float, max_wait: float) -> Reservation:
        import redis

        try:
            granted, wait_us = self._script(
                keys=[self.prefix + sender],
                args=[interval_us(rate), _us(max_wait), IDLE_KEY_TTL_MS],
            )
        except redis.RedisError as exc:
            if not self._down:
                self._down = True
                log.warning("rate_limiter_unavailable", error=type(exc).__name__)
            raise RateLimiterUnavailable(f"redis: {type(exc).__name__}") from exc
        if self._down:
            self._down = False
            log.info("rate_limiter_recovered")
        return Reservation(granted=bool(granted), wait=int(wait_us) / MICROSECONDS)

    def close(self) -> None:
        self._client.close()


def _us(seconds: float) -> int:
    return max(0, int(seconds * MICROSECONDS))


def shared_limiter(redis_url: str | None, deployment: str) -> RateLimiter:
    """This process's limiter: one per Redis URL; without Redis, one per deployment.

    `deployment` (the database URL) keeps two in-process Steadys in one
    interpreter (tests) from sharing a schedule. redis-py reconnects after a
    fork, so a Celery child may inherit a limiter from its parent.
    """
    if redis_url:
        return _redis_limiter(redis_url)
    return _local_limiter(deployment)


@cache
def _redis_limiter(url: str) -> RateLimiter:
    return RedisRateLimiter.from_url(url)


@cache
def _local_limiter(deployment: str) -> RateLimiter:
    del deployment  # only the cache key
    return LocalRateLimiter()


@dataclass(frozen=True)
class SenderLimit:
    """One channel's limit: the sender it counts against, and sends a second."""

    sender: str
    rate: float

    @property
    def claim_size(self) -> int:
        """How many rows to claim at a time: what the sender sends in a short while."""
        return max(1, math.ceil(self.rate * CLAIM_AHEAD_SECONDS))


def sender_limits(
    settings: Settings, providers: Mapping[ChannelKind, Provider]
) -> dict[str, SenderLimit]:
    """Each limited channel's sender and rate (a channel at rate 0 or on the outbox is free).

    The sender is what the carrier counts: the Twilio From number, else the
    Messaging Service (the Twilio provider prefers the number too), and the email
    From address. One key per sender, so every worker sending as it shares it.
    """
    senders = {
        "sms": (
            settings.sms_rate_per_second,
            settings.twilio_from_number or settings.twilio_messaging_service_sid,
        ),
        "email": (settings.email_rate_per_second, settings.email_from),
    }
    limits: dict[str, SenderLimit] = {}
    for channel, provider in providers.items():
        rate, sender = senders.get(channel, (0.0, None))
        if rate > 0 and provider.name != OUTBOX_PROVIDER:
            limits[channel] = SenderLimit(f"{channel}:{provider.name}:{sender or 'default'}", rate)
    return limits


class SendPacer:
    """Spaces one dispatcher's sends by its channels' limits; free channels pass."""

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
        """Rows of `channel` to claim at a time; None when the channel is not limited."""
        limit = self.limits.get(channel)
        return None if limit is None else limit.claim_size

    def wait_for_slot(self, channel: str, patience: float) -> str | None:
        """Take `channel`'s next slot and sleep until it: None means send now.

        Otherwise the reason the message must go back unsent: the slot is more
        than `patience` seconds off (at most `MAX_SLOT_WAIT_SECONDS`), or the
        shared limiter cannot be reached. A free channel never waits.
        """
        limit = self.limits.get(channel)
        if limit is None or self.limiter is None:
            return None
        try:
            reservation = self.limiter.reserve(
                limit.sender, limit.rate, min(patience, MAX_SLOT_WAIT_SECONDS)
            )
        except RateLimiterUnavailable:
            return RELEASE_UNAVAILABLE
        if not reservation.granted:
            return RELEASE_PACED
        record_rate_limit_wait(channel, reservation.wait)
        if reservation.wait > 0:
            self._sleep(reservation.wait)
        return None
