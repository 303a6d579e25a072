"""`steady simulate`: simulated people through the real planner, dispatcher and replies.

A throwaway SQLite database and outbox providers, as in `steady demo`; settings from
constants, never the environment: STEADY_EXPERIMENT on; every person at 3 a day
(21 a week: the cadence never binds, since the grid has 21 points a week) and the SMS
cap at 4 (it never binds either: at most the three points' nudges and the evening's
risky-hour reminder fall in any 24 h). With those two limits out of the way, a nudge can
never change whether a later point in its 24 hours is available, which is what makes the
truth exact (``service.devtools.simulate.model``). The secret key comes from the seed, so
each seed randomises afresh.

The clock jumps from event to event: the planner and dispatcher run at every decision
point and every scheduled send; texts in between go to the handler at their own times.
People sign up through `subscriptions.subscribe` and answer YES through the inbound
handler; their contacts (ME) and activities (DONE walk) go through the same handler as
texts, so they are logged, answered and cancel what they cancel. After each pass the new
decision rows are read: each fixes the person's contacts until the next point (drawn
from the model given the nudge the planner chose and when it goes) and what every option
would have given (``truth.DecisionTruth``).
"""

from __future__ import annotations

import heapq
import itertools
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.devtools.demo.timeline import CapturingOutbox, DemoSettings, _quiet_logs
from service.devtools.simulate.model import DONE_EVERY_DAYS, HOUR, World, draw_people
from service.devtools.simulate.truth import DecisionTruth
from service.learning.risky_hours import counts
from service.pacing.decision_times import next_decision_point, risky_send_time
from service.pacing.rules import SubscriberState
from service.people import subscriptions
from service.providers.base import InboundText, Provider
from service.replies.inbound import InboundHandler
from service.reporting.decision_log import load_rows
from service.sending.risky_patterns import me_times, population_prior
from service.sending.runtime import Runtime
from service.storage.db import get_engine, upgrade
from service.storage.models import Message, MessageStatus, Subscriber
from service.storage.models_records import Decision

ZONES = ("America/New_York", "America/Chicago")
# A Monday in April: the weeks after it cross no daylight-saving change in these zones.
START = datetime(2026, 4, 6, 4, 0, tzinfo=UTC)
CADENCE = 21
SMS_CAP = 4
RANDOMISED = ("restraint", "restraint_risky_hour", "activity", "patience")


@dataclass(frozen=True)
class SimulationOptions:
    subscribers: int = 200
    days: int = 28
    seed: int = 1


@dataclass
class SimulationRun:
    """What a run leaves behind for the report: the exported log and the truths."""

    options: SimulationOptions
    world: World
    rows: list[dict[str, Any]]  # `steady decisions --json` rows, outcomes included
    truths: dict[int, DecisionTruth]  # by decision row id
    row_ids: list[int]  # the decision id of each exported row
    nudges_sent: int
    contacts: int


def simulation_settings(database_url: str, seed: int) -> DemoSettings:
    return DemoSettings(
        STEADY_DATABASE_URL=database_url,
        STEADY_ENV="development",
        STEADY_SECRET_KEY=f"steady-simulate-seed-{seed}-not-a-real-secret-0000",
        STEADY_PUBLIC_URL="http://127.0.0.1:8000",
        STEADY_POSTAL_ADDRESS="Steady simulation, no real address",
        STEADY_EXPERIMENT="on",
        STEADY_MAX_SMS_PER_24H=str(SMS_CAP),
        STEADY_DEFAULT_CADENCE_PER_WEEK=str(CADENCE),
    )


def phone(index: int) -> str:
    """A fictional number (555-01xx), never printed."""
    return f"+1{201 + index // 100}555{100 + index % 100:04d}"


def _hours(at: datetime) -> float:
    return at.timestamp() / HOUR


def _time(hours: float) -> datetime:
    return datetime.fromtimestamp(hours * HOUR, UTC)


class Simulation:
    def __init__(self, options: SimulationOptions, database_url: str) -> None:
        self.options = options
        self.settings = simulation_settings(database_url, options.seed)
        self.outbox = CapturingOutbox()
        providers: dict[ChannelKind, Provider] = {
            ChannelKind.SMS: self.outbox,
            ChannelKind.EMAIL: self.outbox,
        }
        self.runtime = Runtime.from_settings(self.settings, providers=providers)
        self.handler = InboundHandler(self.settings, self.runtime.content)
        self.rng = np.random.default_rng(options.seed)
        zones = [ZONES[i % len(ZONES)] for i in range(options.subscribers)]
        offsets = [START.astimezone(ZoneInfo(z)).utcoffset() / timedelta(hours=1) for z in zones]  # type: ignore[operator]
        self.zones = zones
        self.world = World(draw_people(self.rng, offsets))
        self.person_of: dict[int, int] = {}  # subscriber id -> person index
        self.signed_up: dict[int, datetime] = {}
        self.truths: dict[int, DecisionTruth] = {}
        self.events: list[tuple[float, int, int, str]] = []  # (hours, seq, person, body)
        self.seq = itertools.count()
        self.last_decision = 0
        self.contacts = 0
        self.sids = itertools.count(1)

    # -- the run ---------------------------------------------------------------------

    def run(self) -> SimulationRun:
        end = START + timedelta(days=self.options.days)
        self._sign_up(START)
        self._plan_done_texts(START, end)
        now = START + timedelta(minutes=2)
        while now < end:
            self.runtime.tick(now)
            self._read_decisions(now, end)
            due = max(self._next_due(end), now + timedelta(seconds=1))
            # Texts until then go straight to the handler; the planner waits for its
            # next point or send (what a text asks it to re-plan is picked up then).
            while self.events and self.events[0][0] < _hours(due):
                at, _, person, body = heapq.heappop(self.events)
                self._text_in(person, body, _time(at))
            now = due
        with self.runtime.sessions() as session:
            rows = load_rows(session, end)
            ids = list(session.scalars(select(Decision.id).order_by(Decision.id)))
            sent = session.scalar(
                select(func.count()).where(
                    Message.priority == 1, Message.status == MessageStatus.SENT
                )
            )
        return SimulationRun(
            self.options, self.world, rows, self.truths, ids, int(sent or 0), self.contacts
        )

    def _sign_up(self, now: datetime) -> None:
        hasher = AddressHasher(self.settings.secret_key.get_secret_value())
        with self.runtime.sessions() as session:
            for index, zone in enumerate(self.zones):
                request = subscriptions.SignupRequest(
                    phone=phone(index),
                    email=None,
                    timezone=zone,
                    consent_method="simulation",
                    consent_evidence={"source": "steady simulate"},
                    cadence_per_week=CADENCE,
                )
                made = subscriptions.subscribe(session, request, hasher, now)
                subscriber_id = made[0].subscriber_id
                assert subscriber_id is not None
                self.person_of[subscriber_id] = index
                self.signed_up[subscriber_id] = now
            session.commit()
        for index in range(len(self.zones)):
            self._text_in(index, "YES", now + timedelta(minutes=1))

    def _plan_done_texts(self, start: datetime, end: datetime) -> None:
        """DONE walk, late in the evening (after the window), now and then."""
        days = (end - start).days
        for person in self.world.people:
            for day in range(days):
                if self.rng.random() < 1 / DONE_EVERY_DAYS:
                    local_hour = self.rng.uniform(20.5, 22.5)
                    at = _hours(start) + 24 * day + (local_hour - person.offset_hours - 4) % 24
                    heapq.heappush(self.events, (at, next(self.seq), person.index, "DONE walk"))

    def _text_in(self, person: int, body: str, at: datetime) -> None:
        text = InboundText(f"SMsim{next(self.sids):029d}", phone(person), body)
        with self.runtime.sessions() as session:
            self.handler.handle(session, text, at)
            session.commit()
        if body == "ME":
            self.contacts += 1

    def _next_due(self, end: datetime) -> datetime:
        """The next decision point or scheduled send of anyone (or the end)."""
        with self.runtime.sessions() as session:
            marks = [
                session.scalar(select(func.min(Subscriber.next_decision_at))),
                session.scalar(
                    select(func.min(Message.scheduled_for)).where(
                        Message.status == MessageStatus.SCHEDULED
                    )
                ),
            ]
        return min([*(m for m in marks if m is not None), end])

    # -- after each pass: the new decisions ------------------------------------------

    def _read_decisions(self, now: datetime, end: datetime) -> None:
        with self.runtime.sessions() as session:
            decisions = list(
                session.scalars(
                    select(Decision).where(Decision.id > self.last_decision).order_by(Decision.id)
                )
            )
            if not decisions:
                return
            self.last_decision = decisions[-1].id
            sent_at = dict(
                session.execute(
                    select(Message.id, Message.scheduled_for).where(
                        Message.id.in_([d.message_id for d in decisions if d.message_id])
                    )
                ).all()
            )
            people = [d.subscriber_id for d in decisions]
            hours = dict(
                session.execute(
                    select(Subscriber.id, Subscriber.hour_start).where(Subscriber.id.in_(people))
                ).all()
            )
            mine = me_times(session, people, now - timedelta(days=56), now)
            prior = population_prior(session, now)
        policy = self.runtime.policy
        for d in decisions:
            index = self.person_of[d.subscriber_id]
            person = self.world.people[index]
            zone = self.zones[index]
            state = SubscriberState(
                subscriber_id=d.subscriber_id,
                timezone=zone,
                channel=ChannelKind.SMS,
                cadence_per_week=CADENCE,
                hours=(hours.get(d.subscriber_id, 8), 20),
            )
            following = next_decision_point(max(d.at, now), zone, state.hours, policy)
            days = (d.at - self.signed_up[d.subscriber_id]) / timedelta(days=1)
            gap = (_hours(d.at), _hours(following))
            sends: dict[str, float | None] = {"none": None}
            if d.available and len(d.options) > 1 and d.policy == "mrt-1":
                own = counts(t.astimezone(ZoneInfo(zone)) for t in mine.get(d.subscriber_id, ()))
                pattern = prior.posterior(own)
                for option in d.options:
                    if option == "restraint_risky_hour":
                        risky = risky_send_time(pattern, max(d.at, now), following, state, policy)
                        sends[option] = _hours(risky)
                    elif option != "none":
                        sends[option] = _hours(max(d.at, now))
            if d.chosen != "none" and d.message_id in sent_at:
                sends[d.chosen] = _hours(sent_at[d.message_id])
            survival = {
                o: self.world.survival(person, gap, o, sends.get(o), days)
                for o in (*d.options, d.chosen)
            }
            self.truths[d.id] = DecisionTruth(
                person=index,
                at=gap[0],
                probabilities=dict(d.probabilities) if d.available else {d.chosen: 1.0},
                survival=survival,
                chosen=d.chosen,
                send_delay_hours={
                    o: (s - gap[0]) for o, s in sends.items() if s is not None and o != "none"
                },
            )
            for contact in self.world.contacts(
                self.rng, person, gap, d.chosen, sends.get(d.chosen), days
            ):
                if contact < _hours(end):
                    heapq.heappush(self.events, (contact, next(self.seq), index, "ME"))


def simulate(options: SimulationOptions) -> SimulationRun:
    """Run the simulation in a throwaway database (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="steady-simulate-") as directory, _quiet_logs():
        url = f"sqlite:///{Path(directory) / 'simulate.db'}"
        upgrade(url)
        try:
            return Simulation(options, url).run()
        finally:
            get_engine(url).dispose()
