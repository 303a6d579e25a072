"""A window's nudges are spread per subscriber, not bunched at its opening or at `now`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.channels import ChannelKind
from service.messages.catalog import Kind
from service.pacing.policy import pacing_policy
from service.pacing.rules import PacingPolicy, PastNudge, SubscriberState, plan_next
from service.pacing.spread import spread_fraction
from service.sending.planner import plan_due
from service.storage.db import session_factory
from service.storage.models import Channel, ChannelStatus, Message, Subscriber
from tests.support.world import make_settings

ZONE = "America/Chicago"
TZ = ZoneInfo(ZONE)
SPREAD = timedelta(hours=3)
POLICY = PacingPolicy(spread=SPREAD)
# 06:00 local on a plain winter day: everyone's first nudge waits for 08:00.
BEFORE_WINDOW = datetime(2026, 1, 14, 6, 0, tzinfo=TZ).astimezone(UTC)
OPENING = datetime(2026, 1, 14, 8, 0, tzinfo=TZ).astimezone(UTC)


def state(subscriber_id: int, **extra: object) -> SubscriberState:
    return SubscriberState(
        subscriber_id=subscriber_id,
        timezone=ZONE,
        channel="sms",
        cadence_per_week=7,
        **extra,  # type: ignore[arg-type]
    )


def histogram(times: list[datetime], start: datetime, width: timedelta) -> Counter[int]:
    return Counter(int((at - start) / width) for at in times)


def assert_flat(times: list[datetime], start: datetime, span: timedelta, bins: int) -> None:
    width = span / bins
    counts = histogram(times, start, width)
    assert set(counts) == set(range(bins)), "every part of the span is used, nothing outside it"
    expected = len(times) / bins
    worst = max(abs(count - expected) / expected for count in counts.values())
    assert worst < 0.05, f"bins deviate up to {worst:.1%} from flat: {sorted(counts.items())}"


def test_nudges_held_for_the_opening_spread_flat_over_the_span() -> None:
    times = [plan_next(state(sid), BEFORE_WINDOW, POLICY).scheduled_for for sid in range(1, 3601)]
    assert min(times) >= OPENING
    assert max(times) < OPENING + SPREAD
    assert_flat(times, OPENING, SPREAD, bins=18)  # ten-minute bins, 200 each


def test_without_a_spread_everyone_waits_for_the_same_second() -> None:
    times = {
        plan_next(state(sid), BEFORE_WINDOW, PacingPolicy()).scheduled_for for sid in range(50)
    }
    assert times == {OPENING}


def test_nudges_planned_at_once_spread_over_half_of_what_is_left() -> None:
    now = datetime(2026, 1, 14, 19, 0, tzinfo=TZ).astimezone(UTC)  # an hour before closing
    times = [plan_next(state(sid), now, POLICY).scheduled_for for sid in range(1, 1201)]
    assert_flat(times, now, timedelta(minutes=30), bins=6)
    plans = [plan_next(state(sid), now, POLICY) for sid in range(1, 50)]
    assert all(plan.expires_at > plan.scheduled_for for plan in plans)


def test_a_time_set_by_the_cadence_is_kept_so_the_spread_does_not_drift() -> None:
    sid = 4242
    first = plan_next(state(sid), BEFORE_WINDOW, POLICY).scheduled_for
    assert first != OPENING
    sent = first + timedelta(seconds=0.4)  # the dispatcher's handoff, a little after
    recent = (PastNudge(kind=Kind.WELCOME, template="welcome", channel="sms", at=sent),)
    later = plan_next(state(sid, welcomed=True, recent_nudges=recent), sent, POLICY)
    assert later.scheduled_for == sent + timedelta(days=1), "same time of day, no new offset"


def test_each_subscriber_keeps_a_fraction_of_their_own() -> None:
    assert spread_fraction(17) == spread_fraction(17)
    fractions = [spread_fraction(sid) for sid in range(1000)]
    assert all(0 <= f < 1 for f in fractions)
    assert len(set(fractions)) == 1000


def test_the_planner_spreads_an_imported_batch_over_the_window(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, STEADY_SEND_SPREAD_MINUTES="120")
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        for index in range(600):
            subscriber = Subscriber(timezone=ZONE, next_plan_at=BEFORE_WINDOW)
            subscriber.channels.append(
                Channel(
                    kind=ChannelKind.SMS,
                    address=f"+1202555{index:04d}",
                    status=ChannelStatus.ACTIVE,
                    consent_at=BEFORE_WINDOW,
                    consent_method="import",
                    confirmed_at=BEFORE_WINDOW,
                )
            )
            session.add(subscriber)
        session.commit()
    report = plan_due(sessions, pacing_policy(settings), BEFORE_WINDOW)
    assert report.count == 600
    with sessions() as session:
        times = list(session.scalars(select(Message.scheduled_for)))
    assert_flat(times, OPENING, timedelta(hours=2), bins=6)
