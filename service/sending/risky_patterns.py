"""The ME logs the risky-hour reminder reads: each person's own, and everyone's pattern.

Everyone's pattern is the prior (``population_prior``): fitted from the latest ME logs
and kept for ``PRIOR_TTL`` per database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import DateTime, select, type_coerce
from sqlalchemy.orm import Session

from service.learning.risky_hours import BINS, Prior, bin_of, fit_prior
from service.storage.models import ContactLog, Subscriber

PRIOR_LOOKBACK = timedelta(days=56)
PRIOR_SAMPLE = 50_000  # the latest ME logs of everyone, for everyone's pattern
PRIOR_TTL = timedelta(hours=6)


def me_times(
    session: Session, ids: Sequence[int], since: datetime, until: datetime
) -> dict[int, list[datetime]]:
    """When each of ``ids`` reached out (ME) in ``[since, until]``."""
    out: dict[int, list[datetime]] = defaultdict(list)
    rows = session.execute(
        select(ContactLog.subscriber_id, ContactLog.occurred_at).where(
            ContactLog.subscriber_id.in_(ids),
            ContactLog.initiator == "me",
            ContactLog.occurred_at >= since,
            ContactLog.occurred_at <= until,
        )
    )
    for subscriber_id, occurred_at in rows:
        out[subscriber_id].append(occurred_at)
    return out


_PRIORS: dict[str, tuple[datetime, Prior]] = {}


def population_prior(session: Session, now: datetime) -> Prior:
    """Everyone's pattern, from the latest ME logs (cached per database for PRIOR_TTL)."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    cached = _PRIORS.get(key)
    if cached is not None and abs(now - cached[0]) < PRIOR_TTL:
        return cached[1]
    rows = (
        session.connection()
        .execute(
            select(
                ContactLog.subscriber_id,
                type_coerce(ContactLog.occurred_at, DateTime()),  # naive UTC: made aware below
                Subscriber.timezone,
            )
            .join(Subscriber, Subscriber.id == ContactLog.subscriber_id)
            .where(
                ContactLog.initiator == "me",
                ContactLog.occurred_at >= now - PRIOR_LOOKBACK,
                ContactLog.occurred_at <= now,
            )
            .order_by(ContactLog.occurred_at.desc())
            .limit(PRIOR_SAMPLE)
        )
        .all()
    )
    people: dict[int, int] = {}
    zones: dict[str, ZoneInfo] = {}
    cells_row: list[int] = []
    cells_bin: list[int] = []
    for subscriber_id, occurred_at, timezone in rows:
        cells_row.append(people.setdefault(subscriber_id, len(people)))
        zone = zones.setdefault(timezone, ZoneInfo(timezone))
        cells_bin.append(bin_of(occurred_at.replace(tzinfo=UTC).astimezone(zone)))
    matrix = np.zeros((len(people), BINS))
    np.add.at(matrix, (cells_row, cells_bin), 1)  # each log counts one in its person's bin
    prior = fit_prior(matrix) if len(matrix) else Prior.flat()
    _PRIORS[key] = (now, prior)
    return prior
