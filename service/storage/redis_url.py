"""Redis clients from Steady's URLs, Redis Sentinel included.

`STEADY_BROKER_URL` and `STEADY_REDIS_URL` take `redis://`, `rediss://` and `unix://`
URLs, and for a Sentinel-watched master the form kombu uses for its broker, one
`sentinel://` URL per sentinel joined by `;`, with the master's name as a query
option on the last:

    sentinel://:PASSWORD@10.0.0.1:26379;sentinel://10.0.0.2:26379/0?master_name=steady

The password (if any) is the master's; the path is the database number. Redis Cluster
is not supported (kombu's Redis transport cannot use it): docs/operators.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

SENTINEL_SCHEME = "sentinel://"
MASTER_NAME = "master_name"


class BadRedisURL(ValueError):
    """A `sentinel://` URL without hosts or without `master_name`."""


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int
    password: str | None

    def kombu_url(self) -> str:
        """The broker URL as kombu takes it: no query (the master's name goes in the
        transport options)."""
        auth = f":{self.password}@" if self.password else ""
        return ";".join(
            f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels
        )


def is_sentinel(url: str | None) -> bool:
    return bool(url) and str(url).startswith(SENTINEL_SCHEME)


def parse_sentinel_url(url: str) -> SentinelURL:
    hosts: list[tuple[str, int]] = []
    master: str | None = None
    db = 0
    password = None
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        if parsed.scheme != "sentinel" or not parsed.hostname:
            raise BadRedisURL(f"not a sentinel:// URL: {part.strip()[:40]!r}")
        hosts.append((parsed.hostname, parsed.port or 26379))
        password = parsed.password or password
        if parsed.path.strip("/"):
            db = int(parsed.path.strip("/"))
        names = parse_qs(parsed.query).get(MASTER_NAME)
        if names:
            master = names[-1]
    if not master:
        raise BadRedisURL("a sentinel:// URL needs ?master_name=NAME (the monitored master)")
    return SentinelURL(tuple(hosts), master, db, password)


def redis_client(url: str, **options: Any) -> Any:
    """A redis-py client for `url`; through the sentinels to the current master for a
    `sentinel://` URL (it follows a failover on the next command)."""
    import redis

    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    from redis.sentinel import Sentinel

    where = parse_sentinel_url(url)
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(list(where.sentinels), **timeouts)
    return sentinel.master_for(where.master_name, db=where.db, password=where.password, **options)


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """(broker URL, broker transport options) for Celery."""
    if not is_sentinel(url):
        return url, {}
    where = parse_sentinel_url(url)
    return where.kombu_url(), {MASTER_NAME: where.master_name}
