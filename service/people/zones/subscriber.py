"""A subscriber's zone: the one they named replaces every guess; until then, one question."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from service.pacing.window import WindowLimits, shares_sending_hours, split_zones

if TYPE_CHECKING:  # annotations only
    from sqlalchemy.orm import Session

    from service.storage.models import Subscriber


def set_zone(session: Session, subscriber: Subscriber, zone: str, now: datetime) -> bool:
    """The person named their zone: it replaces every guess. Returns True if it changed."""
    changed = subscriber.timezone != zone or subscriber.timezone_candidates is not None
    subscriber.timezone = zone
    subscriber.timezone_candidates = None
    if changed:
        from service.people import subscriptions

        # The nudge already planned kept the old hours: plan again in the new ones.
        subscriptions.cancel_pending_nudges(session, subscriber.id, now)
    return changed


def zone_question(subscriber: Subscriber, now: datetime, policy: WindowLimits) -> dict[str, bool]:
    """Template variables for the one message that asks for a zone (empty if known)."""
    candidates = split_zones(subscriber.timezone_candidates)
    if not candidates:
        return {}
    hours = (subscriber.hour_start, subscriber.hour_end)
    return {
        "ask_zone": True,
        "zone_shared_hours": shares_sending_hours(now, candidates, hours, policy),
    }
