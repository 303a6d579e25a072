"""`steady demo`: a simulated fortnight for three people (printed by `show.py`).

The real machinery runs on a simulated clock: signup and double opt-in
(`subscriptions`), the reply grammar (`InboundHandler`), the planner and the
dispatcher (`Runtime.tick`). Only the edges are stand-ins: a throwaway SQLite file
in a temporary directory, and outbox providers that capture instead of printing.
The settings come from constants here, never from the environment or `.env`, so
the demo cannot touch `STEADY_DATABASE_URL` or a real Twilio or SendGrid account.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.addresses import AddressHasher
from service.channels import ChannelKind
from service.devtools.demo.personas import (
    DAY_ONE_TIME,
    DEMO_FIRST_DAY,
    PERSONAS,
    DemoEvent,
    DemoResult,
    Persona,
    PersonaResult,
    Source,
    persona_timeline,
)
from service.messages.catalog import NUDGE_KINDS, Kind
from service.messages.lifecycle import PRIORITY_NOW
from service.people import subscriptions
from service.providers.base import InboundText, OutboundMessage, Provider
from service.providers.outbox import OutboxProvider
from service.replies.inbound import InboundHandler
from service.reporting.decision_log import load_rows
from service.sending.runtime import Runtime
from service.settings import Settings
from service.storage.db import get_engine, upgrade
from service.storage.models import (
    ActivityLog,
    Channel,
    ChannelStatus,
    ContactLog,
    Message,
    MessageStatus,
    Subscriber,
)

DEMO_SECRET_KEY = "steady-demo-only-secret-key-for-a-throwaway-database"  # noqa: S105 - not a secret: the database it signs for is deleted when the demo ends
DEMO_PUBLIC_URL = "http://127.0.0.1:8000"
# Between events the clock moves in these steps; it also stops exactly at every
# scripted text and every scheduled send, so no message is late because of the step.
SIMULATION_STEP = timedelta(minutes=30)
NUDGE_KIND_VALUES = frozenset(str(kind) for kind in NUDGE_KINDS)
GUIDE_RULE = "guide"  # the reply rule for a text the grammar did not understand


class DemoSettings(Settings):
    """Settings from the values passed in only: no environment, no `.env` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(database_url: str, *, experiment: bool = False) -> Settings:
    """Development settings: product defaults, no provider credentials."""
    return DemoSettings(
        STEADY_DATABASE_URL=database_url,
        STEADY_ENV="development",
        STEADY_SECRET_KEY=DEMO_SECRET_KEY,
        STEADY_PUBLIC_URL=DEMO_PUBLIC_URL,
        STEADY_POSTAL_ADDRESS="Steady demo, no real address",
        STEADY_EXPERIMENT="on" if experiment else "off",
    )


class CapturingOutbox:
    """The outbox provider, keeping each body by message id instead of printing it."""

    name = "outbox"

    def __init__(self) -> None:
        self.bodies: dict[int, str] = {}
        self._outbox = OutboxProvider(writer=lambda _text: None)

    def send(self, message: OutboundMessage) -> str:
        self.bodies[message.message_id] = message.body
        return self._outbox.send(message)


class Simulation:
    """Drives the runtime through the fortnight and records what each person saw."""

    def __init__(self, settings: Settings, first_day: datetime, days: int) -> None:
        self.outbox = CapturingOutbox()
        providers: dict[ChannelKind, Provider] = {
            ChannelKind.SMS: self.outbox,
            ChannelKind.EMAIL: self.outbox,
        }
        self.runtime = Runtime.from_settings(settings, providers=providers)
        self.handler = InboundHandler(settings, self.runtime.content)
        self.hasher = AddressHasher(settings.secret_key)
        self.result = DemoResult(personas={}, first_day=first_day, days=days)
        self._by_subscriber: dict[int, PersonaResult] = {}
        self._message_sids = itertools.count(1)

    def run(self, personas: tuple[Persona, ...]) -> DemoResult:
        day_one, days = self.result.first_day.date(), self.result.days
        # Until the last day has ended for everyone, whatever their zone.
        end = max(
            datetime.combine(day_one + timedelta(days=days), time(0), ZoneInfo(p.timezone))
            for p in personas
        )
        due = sorted(
            (d for p in personas for d in persona_timeline(p, day_one) if d.at < end),
            key=lambda d: d.at,
        )
        now = due[0].at
        while now < end:
            while due and due[0].at <= now:
                item = due.pop(0)
                if item.body is None:
                    self._sign_up(item.persona, now)
                else:
                    self._text_in(item.persona, item.body, now)
            self._tick(now)
            now = min(now + SIMULATION_STEP, self._next_send(now, end), *(d.at for d in due[:1]))
        return self.result

    def _sign_up(self, persona: Persona, now: datetime) -> None:
        request = subscriptions.SignupRequest(
            phone=persona.phone,
            email=None,
            timezone=persona.timezone,
            consent_method="demo",
            consent_evidence={"source": "steady demo"},
        )
        with self.runtime.sessions() as session:
            confirmations = subscriptions.subscribe(session, request, self.hasher, now)
            session.commit()
        subscriber_id = confirmations[0].subscriber_id
        assert subscriber_id is not None  # a new address always gets a new subscriber
        result = PersonaResult(persona=persona, subscriber_id=subscriber_id)
        self.result.personas[persona.name] = result
        self._by_subscriber[subscriber_id] = result
        self._record(result, now, "signup", "signs up on the web")

    def _text_in(self, persona: Persona, body: str, now: datetime) -> None:
        """One inbound SMS through the real handler, as the Twilio webhook would pass it."""
        result = self.result.personas[persona.name]
        text = InboundText(f"SMdemo{next(self._message_sids):028d}", persona.phone, body)
        with self.runtime.sessions() as session:
            before = _snapshot(session, result.subscriber_id)
            self.handler.handle(session, text, now)
            session.commit()
            effect = _describe_change(session, result, before)
            replies = session.scalars(
                select(Message)
                .where(
                    Message.subscriber_id == result.subscriber_id,
                    Message.id > before.last_message_id,
                    Message.priority == PRIORITY_NOW,
                    Message.status == MessageStatus.SENT,
                )
                .order_by(Message.id)
            ).all()
        if effect is None and any(reply.rule == GUIDE_RULE for reply in replies):
            effect = "not understood: the reply lists the commands"
        self._record(result, now, "inbound", body, effect=effect)
        for reply in replies:
            fields = {"kind": reply.kind, "template": reply.template, "rule": reply.rule}
            self._record(result, now, "reply", reply.body or "", **fields)

    def _tick(self, now: datetime) -> None:
        for outcome in self.runtime.tick(now).dispatch.outcomes:
            if outcome.status != MessageStatus.SENT or outcome.subscriber_id is None:
                continue
            source: Source = "nudge" if outcome.kind in NUDGE_KIND_VALUES else "reply"
            if outcome.kind == Kind.CONFIRM:
                source = "confirm"
            body = self.outbox.bodies.get(outcome.message_id, "")
            fields = {"kind": outcome.kind, "template": outcome.template, "rule": outcome.rule}
            self._record(self._by_subscriber[outcome.subscriber_id], now, source, body, **fields)

    def _next_send(self, now: datetime, end: datetime) -> datetime:
        """When the next scheduled message falls due, or `end` if none is scheduled."""
        with self.runtime.sessions() as session:
            next_send = session.scalar(
                select(func.min(Message.scheduled_for)).where(
                    Message.status == MessageStatus.SCHEDULED, Message.scheduled_for > now
                )
            )
        return min(next_send, end) if next_send is not None else end

    def _record(
        self, result: PersonaResult, now: datetime, source: Source, text: str, **fields: Any
    ) -> None:
        local = now.astimezone(ZoneInfo(result.persona.timezone))
        result.events.append(DemoEvent(result.persona.name, now, local, source, text, **fields))


@dataclass(frozen=True)
class _Snapshot:
    """What an inbound text may change, read before it is handled."""

    last_message_id: int
    last_contact_id: int
    last_activity_id: int
    channel_status: str | None
    paused_until: datetime | None


def _snapshot(session: Session, subscriber_id: int) -> _Snapshot:
    def last_id(column: Any, owner: Any) -> int:
        return int(session.scalar(select(func.max(column)).where(owner == subscriber_id)) or 0)

    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    assert subscriber is not None  # the demo never erases anyone
    return _Snapshot(
        last_message_id=last_id(Message.id, Message.subscriber_id),
        last_contact_id=last_id(ContactLog.id, ContactLog.subscriber_id),
        last_activity_id=last_id(ActivityLog.id, ActivityLog.subscriber_id),
        channel_status=session.scalar(
            select(Channel.status).where(Channel.subscriber_id == subscriber_id)
        ),
        paused_until=subscriber.paused_until,
    )


def _describe_change(session: Session, result: PersonaResult, before: _Snapshot) -> str | None:
    """In words, what an inbound text changed; counts each new log in `result.logs`."""
    after = _snapshot(session, result.subscriber_id)
    sid = result.subscriber_id
    changes: list[str] = []
    for initiator in session.scalars(
        select(ContactLog.initiator).where(
            ContactLog.subscriber_id == sid, ContactLog.id > before.last_contact_id
        )
    ):
        result.logs[initiator] += 1
        changes.append("logged: you reached out" if initiator == "me" else "logged: they did")
    for area, note in session.execute(
        select(ActivityLog.area, ActivityLog.note).where(
            ActivityLog.subscriber_id == sid, ActivityLog.id > before.last_activity_id
        )
    ):
        result.logs["done"] += 1
        changes.append(f"logged: an activity ({note or area or 'unnamed'})")
    if after.channel_status != before.channel_status:
        active = after.channel_status == ChannelStatus.ACTIVE
        changes.append("confirmed: nudges may start" if active else str(after.channel_status))
    if after.paused_until is not None and after.paused_until != before.paused_until:
        until = after.paused_until.astimezone(ZoneInfo(result.persona.timezone))
        changes.append(f"nudges paused until {until:%a %-d %b %H:%M}")
    return "; ".join(changes) or None


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Keep the services' info logs out of the timeline; warnings still go to stderr."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


def simulate(
    *,
    days: int = 14,
    start: datetime | None = None,
    experiment: bool = False,
    decisions: Path | None = None,
) -> DemoResult:
    """Run the fortnight in a throwaway database; day 1 is `start`'s date in Alex's zone.

    ``experiment``: with STEADY_EXPERIMENT on. ``decisions``: write the decision log, with
    outcomes, to this file as `steady decisions --json` prints it (`steady evaluate
    --input` reads it) before the database goes.
    """
    zone = ZoneInfo(PERSONAS[0].timezone)
    first_day = start or datetime.combine(DEMO_FIRST_DAY, DAY_ONE_TIME, zone)
    first_day = first_day.replace(tzinfo=zone) if first_day.tzinfo is None else first_day
    with tempfile.TemporaryDirectory(prefix="steady-demo-") as directory, _quiet_logs():
        url = f"sqlite:///{Path(directory) / 'demo.db'}"
        upgrade(url)
        try:
            settings = demo_settings(url, experiment=experiment)
            simulation = Simulation(settings, first_day.astimezone(zone), days)
            result = simulation.run(PERSONAS)
            if decisions is not None:
                end = first_day + timedelta(days=days + 1)
                with simulation.runtime.sessions() as session:
                    rows = load_rows(session, end)
                decisions.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
            return result
        finally:
            get_engine(url).dispose()  # close the file before the directory goes
