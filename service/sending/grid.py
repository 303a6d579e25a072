"""Who is on the decision grid: ``next_decision_at`` (PRODUCT.md, "Learning what helps").

While STEADY_EXPERIMENT is on, a subscriber's next nudge is decided at their next
decision point (``service.pacing.experiment``), kept in ``next_decision_at``; the
events that ask v1 for a re-plan (a confirmation, a settled nudge, ME, PAUSE...)
still set ``next_plan_at``, and the grid pass turns those into a place on the grid
(``enter_grid``). Switching the experiment off hands everyone back: the v1 planner
calls ``leave_grid`` first, so each person is planned again at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, case, func, update
from sqlalchemy.orm import Session

from service.storage.models import Subscriber, UTCDateTime


def leave_grid(session: Session, now: datetime) -> int:
    """Everyone still on the grid goes back to the v1 planner (due now unless flagged)."""
    result = session.execute(
        update(Subscriber)
        .where(Subscriber.next_decision_at.is_not(None))
        .values(
            next_decision_at=None,
            next_plan_at=case(
                (
                    Subscriber.flagged_at.is_(None),
                    func.coalesce(
                        Subscriber.next_plan_at, bindparam("grid_now", now, type_=UTCDateTime())
                    ),
                ),
                else_=Subscriber.next_plan_at,
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
