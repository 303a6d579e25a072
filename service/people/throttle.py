"""Counting limits shared by every web process: the `limits` package over Redis.

Signups and admin log-in failures are limited per client, prefix or address
(issue 11). Every web process must see the same counts, so they live in Redis
(`STEADY_REDIS_URL`, else the broker) with the moving-window strategy: at most
N hits in any window of the given length, no burst at a window's edge. Without
Redis (`steady run`) the counts live in this process's memory.

When Redis cannot be reached the counts fall back to this process's memory
(one warning per outage): limits that hold per process are better than none
for a form that sends SMS, and better than refusing every signup.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, RateLimiter

log = structlog.get_logger(__name__)

KEY_PREFIX = "steady:limits"
# Redis calls sit on the request path: fail fast and fall back.
REDIS_TIMEOUT_SECONDS = 1.0
# An IPv6 client is its /64: one home line, phone or server is given at least
# that many addresses and may use any of them (RFC 6177; privacy addresses change
# by themselves), so a limit per address would be one per request for a bot.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str) -> str:
    """The key that limits a client: an IPv4 address (an IPv4-mapped IPv6 one read
    as IPv4), the /64 network of an IPv6 address, anything else as it is."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Limit:
    """At most `amount` hits per `seconds`, counted per key under `name`."""

    name: str
    amount: int
    seconds: int
    # fixed: one counter per window (the window named in the key, e.g. a UTC day);
    # moving: the last `seconds` before each hit.
    fixed: bool = False

    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.seconds, namespace=self.name)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds until a hit would be allowed again


ALLOWED = Verdict(True)


class Throttle:
    """Hits and tests limits; shared through Redis when a URL is given."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._memory = MemoryStorage()
        self._storage: Storage = self._memory
        if redis_url:
            self._storage = RedisStorage(
                redis_url,
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        self._down = False
        self._lock = threading.Lock()

    def _strategy(self, limit: Limit, storage: Storage) -> RateLimiter:
        if limit.fixed:
            return FixedWindowRateLimiter(storage)
        return MovingWindowRateLimiter(storage)

    def hit(self, limit: Limit, key: str) -> Verdict:
        """Count one hit unless the limit is reached; the verdict says which."""
        return self._call(limit, key, hit=True)

    def test(self, limit: Limit, key: str) -> Verdict:
        """Whether a hit would be allowed now; counts nothing."""
        return self._call(limit, key, hit=False)

    def clear(self, limit: Limit, key: str) -> None:
        try:
            self._strategy(limit, self._storage).clear(limit.item(), key)
        except StorageError:
            self._strategy(limit, self._memory).clear(limit.item(), key)

    def _call(self, limit: Limit, key: str, *, hit: bool) -> Verdict:
        try:
            verdict = self._verdict(limit, key, self._storage, hit=hit)
        except StorageError as exc:
            with self._lock:
                if not self._down:
                    self._down = True
                    log.warning("throttle_storage_unavailable", error=type(exc).__name__)
            return self._verdict(limit, key, self._memory, hit=hit)
        if self._down and self._storage is not self._memory:
            with self._lock:
                self._down = False
            log.info("throttle_storage_recovered")
        return verdict

    def _verdict(self, limit: Limit, key: str, storage: Storage, *, hit: bool) -> Verdict:
        strategy = self._strategy(limit, storage)
        item = limit.item()
        allowed = strategy.hit(item, key) if hit else strategy.test(item, key)
        if allowed:
            return ALLOWED
        stats = strategy.get_window_stats(item, key)
        return Verdict(False, max(1, math.ceil(stats.reset_time - time.time())))
