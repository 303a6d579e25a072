"""Prometheus metrics (`GET /metrics`).

Two kinds of figure, kept apart on purpose:

* **Database truth**, computed at scrape time by `DatabaseCollector` with a few
  GROUP BY queries: messages by kind, channel and status, queue lag, opt-outs,
  suppressions, subscribers. Every process that serves `/metrics` reports the
  same numbers, however many web or worker processes there are.
* **Process events**, counted in the process where they happen: provider send
  latency and outcomes, rate-limit waits and released claims (in the dispatcher),
  webhooks by result (in the web process). Each process has its own values.
  With several processes (uvicorn `--workers`, Celery prefork children) set
  `PROMETHEUS_MULTIPROC_DIR` to the same empty directory for `steady web` and
  `steady worker` before they start (and empty it on every deploy):
  prometheus_client then writes the values to files there and `/metrics` adds up
  every process's files. Without it, `/metrics` shows the serving process's own
  counts only (right for `steady run`).

No label carries personal data: labels are kinds, channels, statuses, provider
names, reason and error codes and hook names, never an address or a body.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.providers.base import ProviderError
from service.reporting import stats

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Provider calls take tens of milliseconds when healthy and up to the provider
# timeout (10 s by default) when not.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PROCESS_REGISTRY = CollectorRegistry()

PROVIDER_SEND_SECONDS = Histogram(
    "steady_provider_send_seconds",
    "Time spent in one provider send call (this process, or all with multiprocess mode).",
    ["provider", "channel"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS_REGISTRY,
)
PROVIDER_SENDS = Counter(
    "steady_provider_sends",
    "Provider send calls by outcome: sent, transient, permanent or error (unexpected).",
    ["provider", "channel", "outcome"],
    registry=PROCESS_REGISTRY,
)
# Waits for a sender's rate-limit slot (issue 5): none when idle, up to a few
# seconds while a backlog is paced.
RATE_LIMIT_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "steady_rate_limit_wait_seconds",
    "Time a send waited for its sender's rate-limit slot, by channel.",
    ["channel"],
    buckets=RATE_LIMIT_WAIT_BUCKETS,
    registry=PROCESS_REGISTRY,
)
RATE_LIMIT_RELEASED = Counter(
    "steady_rate_limit_released",
    "Claimed messages put back unsent for a later tick, by channel and reason "
    "(paced: the next slot is too far off; lease: the claim's lease is ending; "
    "unavailable: the shared limiter cannot be reached; day_spent: the sender's "
    "daily segments for that priority are spent).",
    ["channel", "reason"],
    registry=PROCESS_REGISTRY,
)
SEGMENTS = Counter(
    "steady_segments",
    "Message segments taken from the senders' budgets, by channel and source "
    "(dispatch: sent by the dispatcher; reply: a TwiML reply to an inbound text).",
    ["channel", "source"],
    registry=PROCESS_REGISTRY,
)
WEBHOOKS = Counter(
    "steady_webhooks",
    "Provider webhooks received, by hook and result (e.g. applied, duplicate, rejected).",
    ["hook", "result"],
    registry=PROCESS_REGISTRY,
)


# Abuse defences of the public signup (issue 11). `reason` is a fixed word:
# client, prefix, address, confirmation_budget; `country` an ISO code of an
# allowed country (others never get this far), so neither carries personal data.
SIGNUPS_REFUSED = Counter(
    "steady_signups_refused",
    "Signups answered 429 by a signup limit, by reason.",
    ["reason"],
    registry=PROCESS_REGISTRY,
)
SMS_CONFIRMATIONS_SENT = Counter(
    "steady_sms_confirmations_sent",
    "SMS confirmation requests queued (web signup or JOIN), by the number's country.",
    ["country"],
    registry=PROCESS_REGISTRY,
)
SMS_CONFIRMATIONS_CONFIRMED = Counter(
    "steady_sms_confirmations_confirmed",
    "SMS channels confirmed for the first time (YES), by the number's country.",
    ["country"],
    registry=PROCESS_REGISTRY,
)
ADMIN_AUTH_FAILURES = Counter(
    "steady_admin_auth_failures",
    "Failed admin logins and bearer attempts, by how (login or bearer).",
    ["method"],
    registry=PROCESS_REGISTRY,
)


def record_signup_refused(reason: str) -> None:
    SIGNUPS_REFUSED.labels(reason).inc()


def record_sms_confirmation_sent(country: str) -> None:
    SMS_CONFIRMATIONS_SENT.labels(country).inc()


def record_sms_confirmation_confirmed(country: str) -> None:
    SMS_CONFIRMATIONS_CONFIRMED.labels(country).inc()


def record_admin_auth_failure(method: str) -> None:
    ADMIN_AUTH_FAILURES.labels(method).inc()


@contextmanager
def provider_send_timer(provider: str, channel: str) -> Iterator[None]:
    """Time a provider call and count its outcome; exceptions pass through unchanged."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "sent"
    except ProviderError as exc:
        outcome = "permanent" if exc.permanent else "transient"
        raise
    finally:
        PROVIDER_SEND_SECONDS.labels(provider, channel).observe(time.perf_counter() - started)
        PROVIDER_SENDS.labels(provider, channel, outcome).inc()


def record_rate_limit_wait(channel: str, seconds: float) -> None:
    """One send's wait for its rate-limit slot (0 when the sender was idle)."""
    RATE_LIMIT_WAIT_SECONDS.labels(channel).observe(seconds)


def record_segments(channel: str, segments: int, *, reply: bool = False) -> None:
    """Segments one message took from its sender's budget."""
    SEGMENTS.labels(channel, "reply" if reply else "dispatch").inc(segments)


def record_released(channel: str, reason: str, count: int = 1) -> None:
    """Claimed messages put back to `scheduled` unsent; `reason` is a fixed word."""
    RATE_LIMIT_RELEASED.labels(channel, reason).inc(count)


def record_webhook(hook: str, result: str, count: int = 1) -> None:
    """Count webhooks: `hook` such as "twilio_status", `result` such as "applied".

    Both must be fixed words from our code, never anything taken from the request.
    """
    WEBHOOKS.labels(hook, result).inc(count)


class DatabaseCollector(Collector):
    """Figures read from the database at scrape time (one short session per scrape)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        try:
            with self.sessions() as session:
                families = list(self._families(session, self.clock()))
        except SQLAlchemyError as exc:
            # A scrape must still answer, so that the alert is "database down",
            # not "target down".
            log.warning("metrics_database_failed", error=type(exc).__name__)
            families = []
        up = 1 if families else 0
        return [
            GaugeMetricFamily(
                "steady_database_up", "1 if the database answered this scrape.", value=up
            ),
            *families,
        ]

    def _families(self, session: Session, now: datetime) -> Iterator[Metric]:
        messages = GaugeMetricFamily(
            "steady_messages",
            "Messages by kind, channel and status.",
            labels=["kind", "channel", "status"],
        )
        for kind, channel, status, count in stats.message_counts_by_kind(session):
            messages.add_metric([kind, channel, status], count)
        yield messages

        queue = stats.queue_state(session, now)
        yield GaugeMetricFamily(
            "steady_queue_lag_seconds",
            "Now minus the oldest due scheduled message; 0 when nothing waits.",
            value=queue.lag_seconds,
        )
        yield GaugeMetricFamily(
            "steady_queue_due", "Scheduled messages already due.", value=queue.due
        )

        opt_outs = GaugeMetricFamily(
            "steady_opt_outs",
            "Channels stopped by the person, by channel and reason.",
            labels=["channel", "reason"],
        )
        for channel, reason, count in stats.opt_outs(session):
            opt_outs.add_metric([channel, reason], count)
        yield opt_outs

        suppressions = GaugeMetricFamily(
            "steady_suppressions",
            "Entries on Steady's do-not-contact list, by channel and reason.",
            labels=["channel", "reason"],
        )
        for channel, reason, count in stats.suppressions(session):
            suppressions.add_metric([channel, reason], count)
        yield suppressions

        counts = stats.subscriber_counts(session)
        subscribers = GaugeMetricFamily(
            "steady_subscribers",
            "Subscribers by their best channel's status.",
            labels=["status"],
        )
        for status in stats.SUBSCRIBER_STATUS_ORDER:
            subscribers.add_metric([status], counts[status])
        yield subscribers
        yield GaugeMetricFamily(
            "steady_subscribers_flagged",
            "Subscribers flagged for an operator (crisis words).",
            value=counts["flagged"],
        )


class _ProcessCollector(Collector):
    """This process's own counters and histograms, forwarded into a scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return PROCESS_REGISTRY.collect()


def render(
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    extra: Iterable[Collector] = (),
) -> tuple[bytes, str]:
    """The exposition text for one scrape, and its content type.

    `extra`: collectors of parts above this one (the SMS budget, `service.sending.capacity`).
    """
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ProcessCollector())
    registry.register(DatabaseCollector(sessions, clock))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
