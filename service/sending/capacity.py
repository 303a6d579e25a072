"""Whether the SMS sender's budget carries the plan (`steady capacity`, issue 13).

An estimate from the database and the settings (a handful of GROUP BY queries over
subscribers and channels; the templates are measured once). Those queries grow with
the subscribers, so `/metrics` and the admin pages read it through `BudgetFigures`:
worked out at most once a minute per web process, in the background after the first.

- **Nudges a day**: each active SMS subscriber (not flagged) nudges
  `min(cadence / 7, STEADY_MAX_SMS_PER_24H)` times a day (an upper bound: quiet
  people get half their cadence, paused ones none); segments per nudge are the
  mean over the nudge catalogue rendered with this deployment's settings.
- **Replies a day** (`steady capacity` only): replies and confirmations that
  went out over the last 7 days (or since the first message, if sooner), a day's
  share, at the mean segments of the reply templates. `/metrics`, the admin page
  and `config check` count nudges only: they read nothing that grows with the
  message history (issue 11), and nudges are most of the plan.
- **Next week**: the same per person, for today's subscribers plus the SMS
  signups still awaiting YES plus as many new ones as the last 7 days brought.
- **The day's budget**: `STEADY_SMS_RATE_PER_SECOND` × the sending window's
  seconds, and `STEADY_SMS_SEGMENTS_PER_DAY`, whichever is smaller (nudges may
  use `NUDGE_SHARE` of the daily cap; it is compared with the whole).
- **The opening peak**: the busiest time zone's nudges land spread over the first
  `STEADY_SEND_SPREAD_MINUTES` of its window; that rate against the per-second one.

Status: `over` when a utilisation passes 100 %, `warn` from `WARN_AT` (80 %),
else `ok`; no budget configured (both 0) is `ok` with utilisations of null.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import distinct, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.channels import ChannelKind
from service.messages.catalog import (
    ACTIVITY_TEMPLATES,
    CHECKIN_TEMPLATE,
    CONFIRM_TEMPLATE,
    PATIENCE_TEMPLATES,
    REPLY_TEMPLATES,
    RESTRAINT_TEMPLATES,
    WELCOME_TEMPLATE,
)
from service.messages.compose import sms_context
from service.messages.content import Content, TemplateError
from service.messages.lifecycle import PRIORITY_NOW, WENT_OUT
from service.messages.segments import count_segments
from service.providers.outbox import OUTBOX
from service.providers.twilio.codes import PROVIDER as TWILIO
from service.sending.budget import NUDGE_SHARE
from service.settings import Settings
from service.storage.models import Channel, ChannelStatus, Message, Subscriber

WARN_AT = 0.8
HISTORY = timedelta(days=7)
WEEK_DAYS = 7
NUDGE_TEMPLATES = (
    WELCOME_TEMPLATE,
    CHECKIN_TEMPLATE,
    *RESTRAINT_TEMPLATES,
    *PATIENCE_TEMPLATES,
    *(name for names in ACTIVITY_TEMPLATES.values() for name in names),
)


def _segments_of(settings: Settings, content: Content, names: Iterable[str]) -> list[int]:
    counts = []
    for discreet in (False, True):
        context = sms_context(
            settings, discreet=discreet, cadence_per_week=settings.default_cadence_per_week
        )
        for name in names:
            try:
                counts.append(count_segments(content.sms(name, context)))
            except TemplateError:
                continue  # `steady config check` reports broken templates
    return counts or [1]


# Measured once per the settings the SMS text depends on (see `sms_context`).
_MEASURED: dict[tuple[Any, ...], dict[str, float]] = {}


def _measured(settings: Settings) -> dict[str, float]:
    """Segments per message of the catalogue, rendered once per deployment."""
    key = (settings.support_contact, settings.safety_line, settings.default_cadence_per_week)
    if key not in _MEASURED:
        _MEASURED[key] = _measure(settings)
    return _MEASURED[key]


def _measure(settings: Settings) -> dict[str, float]:
    content = Content()
    nudges = _segments_of(settings, content, NUDGE_TEMPLATES)
    replies = _segments_of(settings, content, (*REPLY_TEMPLATES, CONFIRM_TEMPLATE))
    return {
        "nudge_mean": round(fmean(nudges), 3),
        "nudge_max": max(nudges),
        "reply_mean": round(fmean(replies), 3),
        "reply_max": max(replies),
    }


def _sms_subscribers(session: Session) -> Any:
    return (
        select(Subscriber.id, Subscriber.cadence_per_week, Subscriber.timezone)
        .join(Channel, Channel.subscriber_id == Subscriber.id)
        .where(
            Channel.kind == ChannelKind.SMS,
            Channel.status == ChannelStatus.ACTIVE,
            Subscriber.flagged_at.is_(None),
        )
        .distinct()
        .subquery()
    )


def _counts(session: Session, now: datetime) -> dict[str, Any]:
    active = _sms_subscribers(session)
    by_cadence: dict[Any, Any] = dict(
        session.execute(
            select(active.c.cadence_per_week, func.count()).group_by(active.c.cadence_per_week)
        ).all()
    )
    busiest_zone = session.scalar(
        select(func.count())
        .group_by(active.c.timezone)
        .order_by(func.count().desc())
        .limit(1)
        .select_from(active)
    )
    pending = session.scalar(
        select(func.count(distinct(Channel.subscriber_id))).where(
            Channel.kind == ChannelKind.SMS, Channel.status == ChannelStatus.PENDING
        )
    )
    new = session.scalar(
        select(func.count()).where(
            Channel.kind == ChannelKind.SMS,
            Channel.status == ChannelStatus.ACTIVE,
            Channel.confirmed_at >= now - HISTORY,
        )
    )
    return {
        "by_cadence": {int(k): int(v) for k, v in by_cadence.items()},
        "busiest_zone": int(busiest_zone or 0),
        "pending": int(pending or 0),
        "new_last_7_days": int(new or 0),
    }


def _replies_per_day(session: Session, now: datetime) -> float:
    """Replies and confirmations that went out over the last week, a day's share.

    Reads the messages table by time: for `steady capacity` only. `/metrics` and
    the admin figures read nothing that grows with the message history (issue 11),
    so theirs count nudges only (`replies_counted` false).
    """
    first = session.scalar(select(func.min(Message.created_at)))
    replies = session.scalar(
        select(func.count()).where(
            Message.channel == ChannelKind.SMS,
            Message.priority == PRIORITY_NOW,
            Message.created_at >= now - HISTORY,
            Message.status.in_(WENT_OUT),
        )
    )
    days = HISTORY if first is None else min(HISTORY, max(now - first, timedelta(days=1)))
    return (replies or 0) / (days / timedelta(days=1))


def _utilisation(planned: float, budget: float | None) -> float | None:
    return None if not budget else round(planned / budget, 3)


def estimate(
    settings: Settings, session: Session, now: datetime, *, replies: bool = False
) -> dict[str, Any]:
    """The capacity report (`steady capacity --json`, documented in docs/operators.md);
    `replies` adds the last week's replies (a read of the message history)."""
    measured = _measured(settings)
    counts = _counts(session, now)
    counts["replies_per_day"] = _replies_per_day(session, now) if replies else 0.0
    cap = settings.max_sms_per_24h
    active = sum(counts["by_cadence"].values())
    nudges_per_day = sum(n * min(c / 7, cap) for c, n in counts["by_cadence"].items())
    per_person = (
        nudges_per_day / active if active else min(settings.default_cadence_per_week / 7, cap)
    )
    window_seconds = (settings.window_end_hour - settings.window_start_hour) * 3600
    rate = settings.sms_rate_per_second
    per_day = settings.sms_segments_per_day
    by_rate = rate * window_seconds if rate > 0 else None
    budgets = [b for b in (by_rate, per_day or None) if b]
    budget = min(budgets) if budgets else None

    def horizon(subscribers: int, replies: float) -> dict[str, Any]:
        nudges = subscribers * per_person
        segments = nudges * measured["nudge_mean"] + replies * measured["reply_mean"]
        return {
            "sms_subscribers": subscribers,
            "nudges_per_day": round(nudges, 1),
            "replies_per_day": round(replies, 1),
            "segments_per_day": round(segments, 1),
            "utilisation": _utilisation(segments, budget),
        }

    today = horizon(active, counts["replies_per_day"])
    ahead = active + counts["pending"] + counts["new_last_7_days"]
    growth = ahead / active if active else 1.0
    next_week = horizon(ahead, counts["replies_per_day"] * growth)
    spread = max(60, settings.send_spread_minutes * 60)
    peak = counts["busiest_zone"] * min(per_person, 1.0) * measured["nudge_mean"] / spread
    per_second = {
        "rate": rate or None,
        "busiest_zone_subscribers": counts["busiest_zone"],
        "spread_seconds": spread,
        "opening_segments_per_second": round(peak, 3),
        "utilisation": _utilisation(peak, rate),
    }
    worst = max(
        (
            u
            for u in (today["utilisation"], next_week["utilisation"], per_second["utilisation"])
            if u
        ),
        default=0.0,
    )
    return {
        "at": now.isoformat(),
        "provider": TWILIO if settings.twilio_enabled else OUTBOX,
        "budget": {
            "rate_per_second": rate,
            "window_seconds": window_seconds,
            "segments_per_day_by_rate": by_rate,
            "segments_per_day_cap": per_day or None,
            "nudge_share_of_cap": NUDGE_SHARE,
            "segments_per_day": budget,
        },
        "segments_per_message": measured,
        "subscribers": {
            "sms_active": active,
            "sms_pending": counts["pending"],
            "sms_new_last_7_days": counts["new_last_7_days"],
            "by_cadence": {str(k): v for k, v in sorted(counts["by_cadence"].items())},
        },
        "today": today,
        "next_week": next_week,
        "per_second": per_second,
        "replies_counted": replies,
        "warn_at": WARN_AT,
        "status": "over" if worst > 1 else "warn" if worst >= WARN_AT else "ok",
    }


class BudgetFigures:
    """`estimate` (nudges only) for `/metrics` and the admin pages, shared by a web
    process's requests, so that a scrape every 15 s costs the same however many people
    subscribe: the first request works the figures out; after that every request gets
    the last figures at once, and when those are `max_age` seconds old one background
    thread works out new ones."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime],
        *,
        max_age: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.max_age = max_age
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._worked_out_at = -math.inf
        self._refresh: threading.Thread | None = None

    def report(self) -> dict[str, Any]:
        with self._lock:
            report = self._report
            stale = self.monotonic() - self._worked_out_at >= self.max_age
            if report is not None and stale and self._refresh is None:
                self._refresh = threading.Thread(
                    target=self._refresh_quietly, name="budget-figures", daemon=True
                )
                self._refresh.start()
        return report if report is not None else self._work_out()

    def wait_for_refresh(self, timeout: float = 30.0) -> None:
        """For tests and shutdown: let a refresh under way finish."""
        refresh = self._refresh
        if refresh is not None:
            refresh.join(timeout)

    def _work_out(self) -> dict[str, Any]:
        with self.sessions() as session:
            report = estimate(self.settings, session, self.clock())
        with self._lock:
            self._report, self._worked_out_at = report, self.monotonic()
        return report

    def _refresh_quietly(self) -> None:
        try:
            self._work_out()
        except SQLAlchemyError:
            pass  # the last figures stand; the database collector reports the outage
        finally:
            with self._lock:
                self._refresh = None


class BudgetCollector(Collector):
    """`steady_sms_budget_utilisation` and friends for `/metrics`, from `BudgetFigures`
    (nudges only: nothing read grows with the message history)."""

    def __init__(self, figures: BudgetFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        try:
            report = self.figures.report()
        except SQLAlchemyError:
            return []  # the database collector already reports the outage
        planned = GaugeMetricFamily(
            "steady_sms_planned_segments_per_day",
            "SMS segments a day the plan needs (nudges and replies), today and next week.",
            labels=["horizon"],
        )
        utilisation = GaugeMetricFamily(
            "steady_sms_budget_utilisation",
            "Planned SMS segments a day ÷ the sender's daily budget (alert from 0.8); "
            "absent when no budget is set.",
            labels=["horizon"],
        )
        for name in ("today", "next_week"):
            planned.add_metric([name], report[name]["segments_per_day"])
            if report[name]["utilisation"] is not None:
                utilisation.add_metric([name], report[name]["utilisation"])
        if report["per_second"]["utilisation"] is not None:
            utilisation.add_metric(["opening_peak"], report["per_second"]["utilisation"])
        families: list[Metric] = [planned, utilisation]
        budget = report["budget"]["segments_per_day"]
        if budget is not None:
            families.append(
                GaugeMetricFamily(
                    "steady_sms_budget_segments_per_day",
                    "The SMS sender's daily budget in segments (rate × window, or the cap).",
                    value=budget,
                )
            )
        return families


def budget_summary(report: dict[str, Any]) -> str:
    """One line for `steady config check` and the admin page."""
    budget = report["budget"]["segments_per_day"]
    today, ahead = report["today"], report["next_week"]
    if budget is None:
        return f"{today['segments_per_day']:,.0f} SMS segments a day planned; no budget set"
    return (
        f"{today['segments_per_day']:,.0f} of {budget:,.0f} SMS segments a day "
        f"({_percent(today['utilisation'])}; next week {_percent(ahead['utilisation'])}, "
        f"window-open peak {_percent(report['per_second']['utilisation'])} of the rate)"
    )


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{math.floor(value * 100)} %"
