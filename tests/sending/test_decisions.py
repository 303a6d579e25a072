"""The decision log as the planners write it: v1's own moments with the experiment off,
a row per decision point with it on (service.sending.decisions), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from service.channels import ChannelKind
from service.pacing.experiment import NUDGE_PROBABILITY_BOUNDS, POLICY_EXPERIMENT, POLICY_V1
from service.pacing.policy import pacing_policy
from service.sending.decisions import Experiment, plan_decision_points
from service.sending.planner import plan_due
from service.sending.runtime import Runtime
from service.storage.db import session_factory
from service.storage.models import (
    Channel,
    ChannelStatus,
    ContactLog,
    Message,
    Subscriber,
)
from service.storage.models_records import Decision
from tests.support.world import RecordingProvider, make_settings

NY = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 4, 6, tzinfo=NY)


def at(day: int, hour: float) -> datetime:
    return (MONDAY + timedelta(days=day, hours=hour)).astimezone(UTC)


def add_people(url: str, count: int, now: datetime, **fields: Any) -> list[int]:
    sessions = session_factory(url)
    ids = []
    with sessions() as session:
        for n in range(count):
            subscriber = Subscriber(
                timezone="America/New_York", next_plan_at=now, created_at=now, **fields
            )
            subscriber.channels.append(
                Channel(
                    kind=ChannelKind.SMS,
                    address=f"+1201555{n:04d}",
                    status=ChannelStatus.ACTIVE,
                    consent_at=now,
                    consent_method="import",
                    confirmed_at=now,
                )
            )
            session.add(subscriber)
            session.flush()
            ids.append(subscriber.id)
        session.commit()
    return ids


def rows(url: str) -> list[Decision]:
    with session_factory(url)() as session:
        return list(session.scalars(select(Decision).order_by(Decision.id)))


def test_v1_logs_each_subscriber_it_looks_at_with_probability_one(database_url: str) -> None:
    now = at(0, 9)
    ids = add_people(database_url, 3, now)
    sessions = session_factory(database_url)
    with sessions.begin() as session:  # the third has nothing active: nothing to plan
        session.execute(
            update(Channel).where(Channel.subscriber_id == ids[2]).values(status="stopped")
        )
    report = plan_due(sessions, pacing_policy(make_settings(database_url)), now)
    logged = rows(database_url)
    assert [d.subscriber_id for d in logged] == ids
    with sessions() as session:
        planned = {m.subscriber_id: m for m in session.scalars(select(Message))}
    for decision in logged[:2]:
        assert decision.policy == POLICY_V1
        assert decision.available
        assert decision.chosen == "welcome"
        assert decision.probabilities == {
            "none": 0.0,
            "welcome": 1.0,
        }
        assert decision.message_id == planned[decision.subscriber_id].id
        assert decision.at == now
    assert (logged[2].available, logged[2].unavailable_reason) == (False, "stopped")
    assert logged[2].message_id is None
    assert report.count == 2


def test_the_grid_decides_at_each_point_and_logs_every_one(database_url: str) -> None:
    settings = make_settings(database_url, STEADY_EXPERIMENT="on")
    runtime = Runtime.from_settings(
        settings, providers={"sms": RecordingProvider(), "email": RecordingProvider()}
    )
    start = at(0, 9)
    ids = add_people(database_url, 12, start, cadence_per_week=21)
    # Hourly passes for three days, as beat would run them (every few seconds).
    now = start
    while now < at(3, 0):
        runtime.tick(now)
        now += timedelta(minutes=30)
    logged = rows(database_url)
    first = [d for d in logged if d.at == start]
    assert len(first) == 12
    assert all(d.unavailable_reason == "welcome" for d in first)
    on_grid = [d for d in logged if d.at != start]
    hours = Counter(d.at.astimezone(NY).strftime("%H:%M") for d in on_grid)
    assert hours == {"10:00": 36, "14:00": 36, "18:00": 36}  # 12 people, 3 days, each point
    randomised = [d for d in on_grid if d.available]
    assert randomised, "nobody was available at any point"
    low, high = NUDGE_PROBABILITY_BOUNDS
    for d in randomised:
        assert d.policy == POLICY_EXPERIMENT
        assert d.draw is not None
        nudging = 1 - d.probabilities["none"]
        assert low - 1e-9 <= nudging <= high + 1e-9
        assert abs(sum(d.probabilities.values()) - 1.0) < 1e-9
    with runtime.sessions() as session:
        messages = {m.id: m for m in session.scalars(select(Message))}
        places = set(session.scalars(select(Subscriber.next_decision_at)))
    for d in logged:
        if d.chosen == "none":
            assert d.message_id is None
            continue
        message = messages[d.message_id]
        assert message.subscriber_id == d.subscriber_id
        assert message.scheduled_for >= d.at
        kind = "restraint" if d.chosen == "restraint_risky_hour" else d.chosen
        assert message.kind == kind
    assert places == {at(3, 10)}
    assert {d.subscriber_id for d in logged} == set(ids)


def test_draws_are_fixed_by_subscriber_point_and_secret() -> None:
    experiment = Experiment.from_secret("one secret")
    point = at(1, 10)
    assert experiment.draw(5, point) == experiment.draw(5, point)
    assert experiment.draw(5, point) != experiment.draw(6, point)
    assert experiment.draw(5, point) != Experiment.from_secret("another").draw(5, point)
    draws = [experiment.draw(n, point) for n in range(20_000)]
    # Uniform: each tenth of [0, 1) holds about a tenth of them (4 sd of a binomial).
    counts = Counter(int(d * 10) for d in draws)
    assert all(abs(c - 2000) < 4 * (20_000 * 0.1 * 0.9) ** 0.5 for c in counts.values())


def test_crisis_pause_and_opt_out_are_logged_at_their_points(database_url: str) -> None:
    settings = make_settings(database_url, STEADY_EXPERIMENT="on")
    sessions = session_factory(database_url)
    policy = pacing_policy(settings)
    experiment = Experiment.from_secret("s")
    start = at(0, 9)
    flagged, paused, opted = add_people(database_url, 3, start, welcomed=True)
    with sessions.begin() as session:
        session.execute(update(Subscriber).where(Subscriber.id == flagged).values(flagged_at=start))
        session.execute(
            update(Subscriber).where(Subscriber.id == paused).values(paused_until=at(2, 0))
        )
        session.execute(
            update(Subscriber).where(Subscriber.id == opted).values(experiment_opt_out=True)
        )
        # The flagged person was already on the grid (flagged afterwards).
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == flagged)
            .values(next_plan_at=None, next_decision_at=at(0, 10))
        )
    for hour in (9, 10, 14, 18):
        plan_decision_points(sessions, policy, at(0, hour), experiment)
    by_person: dict[int, list[Decision]] = {}
    for d in rows(database_url):
        by_person.setdefault(d.subscriber_id, []).append(d)
    assert {d.unavailable_reason for d in by_person[flagged]} == {"crisis"}
    assert len(by_person[flagged]) == 3
    assert {d.unavailable_reason for d in by_person[paused]} == {"pause"}
    assert all(
        d.policy == "v1-grid" and max(d.probabilities.values()) == 1.0 for d in by_person[opted]
    )
    with sessions() as session:
        assert session.scalar(select(Message.id).where(Message.subscriber_id == flagged)) is None


def test_the_daily_question_goes_to_everyone_after_the_last_point(database_url: str) -> None:
    settings = make_settings(database_url, STEADY_EXPERIMENT="on", STEADY_DAILY_SURVEY="on")
    sessions = session_factory(database_url)
    experiment = Experiment.from_secret("s", survey=True)
    ids = add_people(database_url, 5, at(0, 9), welcomed=True)
    for hour in (9, 10, 14, 18):
        plan_decision_points(sessions, pacing_policy(settings), at(0, hour), experiment)
    with sessions() as session:
        surveys = list(session.scalars(select(Message).where(Message.kind == "survey")))
    assert sorted(m.subscriber_id for m in surveys) == ids
    assert {m.scheduled_for for m in surveys} == {at(0, 19)}
    assert {m.expires_at for m in surveys} == {at(0, 20)}


def test_me_starts_a_hold_that_is_logged_not_randomised(database_url: str) -> None:
    sessions = session_factory(database_url)
    settings = make_settings(database_url)
    (person,) = add_people(database_url, 1, at(0, 9), welcomed=True)
    with sessions.begin() as session:
        session.add(ContactLog(subscriber_id=person, initiator="me", occurred_at=at(0, 9)))
    for hour in (9, 10):
        plan_decision_points(
            sessions, pacing_policy(settings), at(0, hour), Experiment.from_secret("s")
        )
    (decision,) = rows(database_url)
    assert decision.unavailable_reason == "restraint_hold"
    assert decision.chosen == "restraint"
    assert decision.probabilities == {"none": 0.0, "restraint": 1.0}


def test_switching_the_experiment_off_hands_everyone_back_to_v1(database_url: str) -> None:
    sessions = session_factory(database_url)
    policy = pacing_policy(make_settings(database_url))
    ids = add_people(database_url, 2, at(0, 9), welcomed=True)
    plan_decision_points(sessions, policy, at(0, 9), Experiment.from_secret("s"))
    with sessions() as session:
        assert all(s.next_decision_at == at(0, 10) for s in session.scalars(select(Subscriber)))
    plan_due(sessions, policy, at(0, 9) + timedelta(minutes=5))
    with sessions() as session:
        people = list(session.scalars(select(Subscriber)))
    assert all(s.next_decision_at is None for s in people)
    logged = rows(database_url)
    assert [d.policy for d in logged] == ["v1", "v1"]
    assert sorted(d.subscriber_id for d in logged) == ids
    assert all(d.message_id is not None for d in logged)
