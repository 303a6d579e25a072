"""Provider budgets per sender, shared by every worker through Redis (issues 5 and 13).

Carriers count *segments*, not messages (`service.messages.segments`): a US long
code takes about one segment a second, a short code about a hundred, and T-Mobile
caps a 10DLC brand's segments a day. Each sender has two budgets here:

Per second: the generic cell rate algorithm in its virtual-scheduling form (GCRA,
ITU-T I.371): one number per sender, the theoretical arrival time (TAT) of the
next segment. A message of n segments reserves the slot at `max(now, TAT)` and
moves TAT n intervals past it, then sleeps until its slot. Any window of W
seconds therefore holds at most `rate × W` segments plus one message's own
(a long message goes out whole at its slot, its segments paid for after it).

Per day: a rolling 24 hours, not a calendar day. Carriers reset their daily caps
on their own calendar day, whose zone Steady cannot know; a rolling 24 h holds
whichever it is (any calendar day lies inside some 24 h), where a UTC day could
let two of Steady's days' worth land in one of the carrier's. Segments are
counted in one-minute buckets; a bucket leaves the count only once it is more
than 24 h old, so the count never under-states the last 24 h. A reservation
names its allowance (how far into the day's budget it may go: nudges stop short
of it, replies and confirmations may use all of it, `service.sending.budget`).

A reservation whose wait would exceed the caller's `max_wait`, or whose segments
would pass its allowance, is refused and changes nothing. A `charge` (a TwiML
reply: it has already gone) always takes its segments from both budgets.

With Redis (`STEADY_REDIS_URL`, else the broker) a reservation is one Lua
script, atomic on the server, timed by the server's own clock (`TIME`): every
process on every host shares one schedule and one day count. If Redis loses the
keys (a restart without persistence, a failover, a FLUSHDB) the schedule
restarts at "now" and the day's count at zero. Without Redis (`steady run`,
`steady tick`, eager Celery) the same arithmetic runs in process under a lock,
on the monotonic clock.

When Redis cannot be reached the limiter raises `RateLimiterUnavailable`. The
dispatcher then sends nothing on that channel (carriers filter senders that
burst past their registered rate, so "not now" is the safe answer), puts the
rows back for the next tick, and this module logs one warning per outage.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

KEY_PREFIX = "steady:ratelimit:"
DAY_KEY_PART = "day:"
MICROSECONDS = 1_000_000
# Redis calls are on the send path: fail fast instead of holding a batch's lease.
REDIS_TIMEOUT_SECONDS = 2.0
# An idle sender's key outlives its last slot by this much, then Redis drops it.
IDLE_KEY_TTL_MS = 60_000
# The daily budget is a rolling 24 h of one-minute buckets; a bucket counts until
# it is more than this many minutes old (so 1,441 buckets at most).
DAY_MINUTES = 24 * 60
DAY_KEY_TTL_MS = (DAY_MINUTES + 2) * 60_000

# Drops the buckets older than 24 h from the day hash KEYS[2] and returns what is
# left. Fields: 'o' the oldest minute kept, 't' the total, '<minute>' a bucket.
# Every write trims first, so the buckets always lie within 1,440 minutes of 'o'
# and the loop is amortised O(1); a gap longer than a day clears the hash at once.
_TRIM_LUA = """
local function trim(key, minute)
  local cutoff = minute - @DAY@
  local oldest = tonumber(redis.call('HGET', key, 'o') or '-1')
  if oldest < 0 or cutoff - oldest > @DAY@ + 1 then
    redis.call('DEL', key)
    redis.call('HSET', key, 'o', minute, 't', 0)
    return 0
  end
  local total = tonumber(redis.call('HGET', key, 't') or '0')
  if oldest < cutoff then
    for m = oldest, cutoff - 1 do
      local count = redis.call('HGET', key, tostring(m))
      if count then
        total = total - tonumber(count)
        redis.call('HDEL', key, tostring(m))
      end
    end
    redis.call('HSET', key, 'o', cutoff, 't', total)
  end
  return total
end
""".replace("@DAY@", str(DAY_MINUTES))

# KEYS[1] the sender's TAT (integer microseconds of the Redis clock); KEYS[2] its day.
# ARGV[1] interval per segment, µs (0 = no per-second limit); ARGV[2] the longest
# wait the caller accepts, µs; ARGV[3] how long the TAT key outlives its last slot,
# ms; ARGV[4] segments; ARGV[5] the day's allowance (0 = no daily limit); ARGV[6]
# '1' to charge (always granted). Returns {granted, wait µs, refused for the day}.
# Lua numbers are doubles: microseconds since 1970 (~1.8e15) are exact below 2^53.
BUDGET_RESERVE_LUA = (
    _TRIM_LUA
    + """
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local segments = tonumber(ARGV[4])
local allowance = tonumber(ARGV[5])
local charge = ARGV[6] == '1'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local minute = math.floor(tonumber(clock[1]) / 60)
local used = trim(KEYS[2], minute)
if not charge and allowance > 0 and used + segments > allowance then
  return {0, 0, 1}
end
local wait = 0
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  local slot = math.max(now, tat)
  wait = slot - now
  if not charge and wait > max_wait then
    return {0, wait, 0}
  end
  local next_tat = slot + interval * segments
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
             'PX', math.floor((next_tat - now) / 1000) + tonumber(ARGV[3]))
end
redis.call('HINCRBY', KEYS[2], tostring(minute), segments)
redis.call('HINCRBY', KEYS[2], 't', segments)
redis.call('PEXPIRE', KEYS[2], """
    + str(DAY_KEY_TTL_MS)
    + """)
return {1, wait, 0}
"""
)
BUDGET_USED_LUA = (
    _TRIM_LUA
    + """
local clock = redis.call('TIME')
return trim(KEYS[1], math.floor(tonumber(clock[1]) / 60))
"""
)


class RateLimiterUnavailable(RuntimeError):
    """The shared limiter cannot be reached; nothing may be sent on its account."""


@dataclass(frozen=True)
class Reservation:
    """A slot, or a refusal. `wait` is seconds until the slot (or until one would be);
    `day_spent` says the refusal is the day's allowance, not the wait."""

    granted: bool
    wait: float
    day_spent: bool = False


class RateLimiter(Protocol):
    """Reserves send slots for a sender; shared by whoever shares the limiter."""

    def reserve(
        self,
        sender: str,
        rate: float,
        max_wait: float,
        *,
        segments: int = 1,
        day_allowance: int = 0,
    ) -> Reservation: ...

    def charge(self, sender: str, rate: float, segments: int) -> None: ...

    def used_today(self, sender: str) -> int: ...


def interval_us(rate: float) -> int:
    """Microseconds between two segments at `rate` per second, rounded up (never faster)."""
    if rate <= 0:
        raise ValueError("a rate limit must be positive")
    return max(1, math.ceil(MICROSECONDS / rate))


def _interval_or_none(rate: float) -> int:
    return interval_us(rate) if rate > 0 else 0


def gcra_reserve(
    tat_us: int, now_us: int, interval: int, max_wait_us: int, segments: int = 1
) -> tuple[Reservation, int]:
    """The per-second arithmetic (the Lua script's twin): (reservation, new TAT)."""
    slot = max(now_us, tat_us)
    wait = slot - now_us
    if wait > max_wait_us:
        return Reservation(granted=False, wait=wait / MICROSECONDS), tat_us
    return Reservation(granted=True, wait=wait / MICROSECONDS), slot + interval * segments


@dataclass
class RollingDay:
    """Segments of the last 24 h in one-minute buckets (the Lua script's twin)."""

    buckets: deque[list[int]] = field(default_factory=deque)  # [minute, segments], oldest first
    total: int = 0

    def used(self, minute: int) -> int:
        cutoff = minute - DAY_MINUTES
        while self.buckets and self.buckets[0][0] < cutoff:
            self.total -= self.buckets.popleft()[1]
        return self.total

    def add(self, minute: int, segments: int) -> None:
        if self.buckets and self.buckets[-1][0] == minute:
            self.buckets[-1][1] += segments
        else:
            self.buckets.append([minute, segments])
        self.total += segments


class LocalRateLimiter:
    """The limiter for one process (no Redis): threads share it, processes do not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, int] = {}
        self._days: dict[str, RollingDay] = {}

    def reserve(
        self,
        sender: str,
        rate: float,
        max_wait: float,
        *,
        segments: int = 1,
        day_allowance: int = 0,
    ) -> Reservation:
        return self._take(sender, rate, _us(max_wait), segments, day_allowance, charge=False)

    def charge(self, sender: str, rate: float, segments: int) -> None:
        self._take(sender, rate, 0, segments, 0, charge=True)

    def used_today(self, sender: str) -> int:
        with self._lock:
            return self._day(sender).used(_minute())

    def _day(self, sender: str) -> RollingDay:
        return self._days.setdefault(sender, RollingDay())

    def _take(
        self,
        sender: str,
        rate: float,
        max_wait_us: int,
        segments: int,
        allowance: int,
        *,
        charge: bool,
    ) -> Reservation:
        with self._lock:
            now_us = time.monotonic_ns() // 1000
            minute = now_us // (60 * MICROSECONDS)
            day = self._day(sender)
            if not charge and allowance > 0 and day.used(minute) + segments > allowance:
                return Reservation(granted=False, wait=0.0, day_spent=True)
            interval = _interval_or_none(rate)
            reservation = Reservation(granted=True, wait=0.0)
            if interval:
                reservation, tat = gcra_reserve(
                    self._tat.get(sender, 0),
                    now_us,
                    interval,
                    max_wait_us if not charge else 2**62,
                    segments,
                )
                if not reservation.granted:
                    return reservation
                self._tat[sender] = tat
            day.used(minute)
            day.add(minute, segments)
            return reservation


class RedisRateLimiter:
    """The limiter shared through Redis by every process that uses the same keys."""

    def __init__(self, client: Any, prefix: str = KEY_PREFIX) -> None:
        self.prefix = prefix
        self._client = client
        self._reserve = client.register_script(BUDGET_RESERVE_LUA)
        self._used = client.register_script(BUDGET_USED_LUA)
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

    def reserve(
        self,
        sender: str,
        rate: float,
        max_wait: float,
        *,
        segments: int = 1,
        day_allowance: int = 0,
    ) -> Reservation:
        granted, wait_us, day_spent = self._call(
            self._reserve,
            [self.prefix + sender, self.prefix + DAY_KEY_PART + sender],
            [_interval_or_none(rate), _us(max_wait), IDLE_KEY_TTL_MS, segments, day_allowance, 0],
        )
        return Reservation(
            granted=bool(granted), wait=int(wait_us) / MICROSECONDS, day_spent=bool(day_spent)
        )

    def charge(self, sender: str, rate: float, segments: int) -> None:
        self._call(
            self._reserve,
            [self.prefix + sender, self.prefix + DAY_KEY_PART + sender],
            [_interval_or_none(rate), 0, IDLE_KEY_TTL_MS, segments, 0, 1],
        )

    def used_today(self, sender: str) -> int:
        return int(self._call(self._used, [self.prefix + DAY_KEY_PART + sender], []))

    def _call(self, script: Any, keys: list[str], args: list[int]) -> Any:
        import redis

        try:
            result = script(keys=keys, args=args)
        except redis.RedisError as exc:
            if not self._down:
                self._down = True
                log.warning("rate_limiter_unavailable", error=type(exc).__name__)
            raise RateLimiterUnavailable(f"redis: {type(exc).__name__}") from exc
        if self._down:
            self._down = False
            log.info("rate_limiter_recovered")
        return result

    def close(self) -> None:
        self._client.close()


def _us(seconds: float) -> int:
    return max(0, int(seconds * MICROSECONDS))


def _minute() -> int:
    return time.monotonic_ns() // (60 * 1_000_000_000)


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
