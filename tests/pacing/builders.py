"""Subscriber states, instants and nudge histories the pacing tests build."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from service.messages.catalog import kind_of
from service.pacing.rules import PacingPolicy, PastNudge, PlannedNudge, SubscriberState, plan_next

POLICY = PacingPolicy()
NEW_YORK = "America/New_York"


def utc(text: str) -> datetime:
    """An ISO-8601 instant without offset, read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    """An ISO-8601 local wall time in ``zone``, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def wall(at: datetime, zone: str) -> datetime:
    return at.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def subscriber(**changes: object) -> SubscriberState:
    """A welcomed New York subscriber on SMS at the default cadence.

    Without ``active_since`` or ``last_engaged_at`` there is no engagement clock, so
    the subscriber never counts as quiet unless a test sets one.
    """
    base = SubscriberState(
        subscriber_id=1, timezone=NEW_YORK, channel="sms", cadence_per_week=7, welcomed=True
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def sent(template: str, at: datetime, channel: str = "sms") -> PastNudge:
    return PastNudge(kind=kind_of(template), template=template, channel=channel, at=at)  # type: ignore[arg-type]


def simulate(
    state: SubscriberState,
    start: datetime,
    count: int,
    policy: PacingPolicy = POLICY,
    engaged: bool = False,
) -> list[tuple[datetime, PlannedNudge]]:
    """Plan ``count`` nudges in a row, each going out and fed back into the history.

    Returns ``(now, plan)`` pairs. The planner supplies only the last ``lookback``.
    ``engaged`` marks the subscriber as engaging at every nudge.
    """
    now, plans = start, []
    for _ in range(count):
        plan = plan_next(state, now, policy)
        plans.append((now, plan))
        now = plan.scheduled_for
        nudge = PastNudge(plan.kind, plan.template, state.channel, plan.scheduled_for)
        state = replace(
            state,
            welcomed=True,
            recent_nudges=(
                *(n for n in state.recent_nudges if n.at > now - policy.lookback),
                nudge,
            ),
            contacts=tuple(c for c in state.contacts if c.at > now - policy.lookback),
            last_engaged_at=now if engaged else state.last_engaged_at,
        )
    return plans
