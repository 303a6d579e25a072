"""`steady evaluate` on a deployment-sized log: 1,000 people x 60 days of decisions
(180,000 rows, three points a day), from the database, in under a minute."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert

from service.learning.synthetic import SyntheticDesign, simulate
from service.reporting.evaluation import evaluate_database
from service.storage.db import session_factory
from service.storage.models import ContactLog, Subscriber
from service.storage.models_records import Decision

START = datetime(2026, 1, 5, tzinfo=UTC)
PEOPLE, DAYS = 1000, 60
BUDGET_SECONDS = 60.0


def _fill(url: str, people: int = PEOPLE, days: int = DAYS) -> None:
    trial = simulate(SyntheticDesign(people=people, days=days), seed=9)
    hours = np.asarray(trial.design.decision_hours)[trial.slot] + 24.0 * trial.day
    options = ["none", *trial.design.options]
    sessions = session_factory(url)
    with sessions.begin() as session:
        session.execute(
            insert(Subscriber),
            [{"id": i + 1, "timezone": "UTC", "created_at": START} for i in range(people)],
        )
        decisions: list[dict[str, Any]] = []
        contacts: list[dict[str, Any]] = []
        for i in range(len(trial.person)):
            at = START + timedelta(hours=float(hours[i]))
            available = bool(trial.available[i])
            offered = options if available else ["none"]
            decisions.append(
                {
                    "at": at,
                    "subscriber_id": int(trial.person[i]) + 1,
                    "available": available,
                    "unavailable_reason": None if available else "window",
                    "options": offered,
                    "probabilities": {o: float(trial.probabilities[o][i]) for o in offered},
                    "chosen": str(trial.chosen[i]),
                    "policy": "mrt-1",
                }
            )
            if trial.me_count[i]:
                contacts.append(
                    {
                        "subscriber_id": int(trial.person[i]) + 1,
                        "initiator": "me",
                        "occurred_at": at + timedelta(hours=1),
                        "created_at": at + timedelta(hours=1),
                    }
                )
        session.execute(insert(Decision), decisions)
        session.execute(insert(ContactLog), contacts)


@pytest.mark.faults
def test_a_thousand_people_over_sixty_days_evaluate_in_under_a_minute(database_url: str) -> None:
    _fill(database_url)
    started = time.monotonic()
    result = evaluate_database(session_factory(database_url), START + timedelta(days=DAYS + 2))
    elapsed = time.monotonic() - started
    print(f"evaluate: {result['decisions']} decisions, {elapsed:.1f} s")
    assert result["decisions"] == PEOPLE * DAYS * 3
    assert result["people"] == PEOPLE
    assert {e["name"] for e in result["effects"]} == {
        "restraint",
        "activity",
        "patience",
        "risky_hour",
    }
    assert elapsed < BUDGET_SECONDS
