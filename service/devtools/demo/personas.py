"""The people in `steady demo`: who they are, what they text back, what they got.

No I/O here: the personas and their scripts, and the records the simulation in
`service.devtools.demo.timeline` fills in (`DemoResult`), with the figures the summary prints. The
numbers are fictional (555-01xx is reserved for fiction) and never printed: the
timeline names people, not numbers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

# Day 1 of the demo fortnight: a Monday. US daylight saving starts on Sunday 8 March
# 2026, so the fortnight also shows the sending window following local time.
DEMO_FIRST_DAY = date(2026, 3, 2)
DAY_ONE_TIME = time(9, 0)  # day 1 starts at 09:00 in the first persona's zone
CONFIRM_DELAY = timedelta(minutes=2)  # each person answers the confirmation text this soon


@dataclass(frozen=True)
class ScriptedText:
    """A text the person sends: on `day` (1 = the signup day) at `at`, local time."""

    day: int
    at: time
    body: str


@dataclass(frozen=True)
class Persona:
    name: str
    role: str  # what this person shows about Steady
    phone: str  # E.164, fictional; never printed
    timezone: str  # IANA
    signs_up_at: time  # local, on day 1, through the web form
    script: tuple[ScriptedText, ...]


def _texts(*items: tuple[int, str, str]) -> tuple[ScriptedText, ...]:
    """`(day, "HH:MM", body)` rows, oldest first."""
    return tuple(ScriptedText(day, time.fromisoformat(at), body) for day, at, body in items)


ALEX = Persona(
    name="Alex",
    role="reaches out too often",
    phone="+12125550101",
    timezone="America/New_York",
    signs_up_at=time(9, 0),
    script=_texts(
        (1, "18:40", "ME"),
        (2, "12:15", "ME text"),
        (3, "21:30", "I called her"),
        (5, "10:05", "ME"),
        (6, "19:20", "ME call"),
        (6, "19:45", "WHY"),
        (8, "13:10", "THEM"),
        (9, "08:30", "ME"),
    ),
)

SAM = Persona(
    name="Sam",
    role="steady",
    phone="+13125550102",
    timezone="America/Chicago",
    signs_up_at=time(12, 30),
    script=_texts(
        (3, "17:30", "ME"),
        (4, "12:40", "THEM"),
        (6, "07:15", "DONE gym"),
        (10, "20:30", "DONE class"),
        (11, "09:30", "PAUSE 2"),
    ),
)

JORDAN = Persona(
    name="Jordan",
    role="their partner reaches out",
    phone="+14155550103",
    timezone="America/Los_Angeles",
    signs_up_at=time(17, 45),
    script=_texts(
        (2, "19:05", "THEM"),
        (5, "12:30", "she texted"),
        (7, "16:00", "DONE friends"),
        (9, "18:45", "THEM call"),
        (12, "11:20", "THEM"),
        (12, "11:50", "ME"),
    ),
)

PERSONAS: tuple[Persona, ...] = (ALEX, SAM, JORDAN)


@dataclass(frozen=True)
class DueText:
    """Something a persona does at a moment: a text, or (body None) the web signup."""

    at: datetime  # UTC
    persona: Persona
    body: str | None


def persona_timeline(persona: Persona, first_day: date) -> list[DueText]:
    """The persona's signup, their YES, then their scripted texts, in UTC."""
    zone = ZoneInfo(persona.timezone)

    def at(day: int, wall: time) -> datetime:
        local = datetime.combine(first_day + timedelta(days=day - 1), wall, tzinfo=zone)
        return local.astimezone(UTC)

    signup = at(1, persona.signs_up_at)
    return [
        DueText(signup, persona, None),
        DueText(signup + CONFIRM_DELAY, persona, "YES"),
        *(DueText(at(text.day, text.at), persona, text.body) for text in persona.script),
    ]


# --- what happened to them ------------------------------------------------------------

Source = Literal["signup", "inbound", "confirm", "reply", "nudge"]


@dataclass(frozen=True)
class DemoEvent:
    """One line of the timeline: a text in, or a message out, and why."""

    persona: str
    at: datetime  # UTC
    local: datetime  # the persona's wall time
    source: Source
    text: str  # what was texted in, or the body of what went out
    kind: str | None = None  # message kind, for outbound events
    template: str | None = None
    rule: str | None = None
    effect: str | None = None  # for inbound texts: what Steady logged or changed

    @property
    def is_nudge(self) -> bool:
        """Planned by Steady itself: keeps the window, cadence, spacing and SMS cap."""
        return self.source == "nudge"


@dataclass
class PersonaResult:
    """One person's fortnight: every event, and what they logged."""

    persona: Persona
    subscriber_id: int
    events: list[DemoEvent] = field(default_factory=list)
    logs: Counter[str] = field(default_factory=Counter)  # "me", "them", "done"

    @property
    def nudges(self) -> list[DemoEvent]:
        return [e for e in self.events if e.is_nudge]

    @property
    def replies(self) -> list[DemoEvent]:
        """Answers to the person's own texts: at once, outside every pacing limit."""
        return [e for e in self.events if e.source == "reply"]

    def nudge_kinds(self) -> Counter[str]:
        return Counter(e.kind for e in self.nudges if e.kind is not None)

    def share_of_nudges(self, kind: str) -> float:
        """The fraction of this person's nudges that were `kind` (0 when none went)."""
        nudges = self.nudges
        return self.nudge_kinds()[kind] / len(nudges) if nudges else 0.0

    def figures(self) -> dict[str, str]:
        """This person's column of the summary: nudges by kind, replies, logs."""
        kinds = self.nudge_kinds()
        main = ("restraint", "activity", "patience")
        logs = self.logs
        return {
            "nudges": str(len(self.nudges)),
            **{f"  {kind}": str(kinds[kind]) for kind in main},
            "  other (welcome, check-in)": str(sum(n for k, n in kinds.items() if k not in main)),
            "restraint share of nudges": _percent(self.share_of_nudges("restraint")),
            "replies to their texts": str(len(self.replies)),
            "logged ME / THEM / DONE": f"{logs['me']} / {logs['them']} / {logs['done']}",
        }


@dataclass
class DemoResult:
    """Everyone's fortnight, by persona name."""

    personas: dict[str, PersonaResult]
    first_day: datetime  # day 1, aware
    days: int

    def __getitem__(self, name: str) -> PersonaResult:
        return self.personas[name]

    def timeline(self) -> list[DemoEvent]:
        """Every event, by each person's local date and wall time (stable within a person)."""
        events = [e for result in self.personas.values() for e in result.events]
        return sorted(events, key=lambda e: (e.local.date(), e.local.replace(tzinfo=None)))


def _percent(share: float) -> str:
    return f"{round(share * 100)}%"


def takeaway(result: DemoResult) -> str:
    """One sentence on what the reader just saw, from the figures themselves."""
    reacher, steady, reached = (result[persona.name] for persona in (ALEX, SAM, JORDAN))
    tips = sum(1 for e in reached.replies if e.kind == "tip")
    activities = {r.persona.name: r.nudge_kinds()["activity"] for r in (reached, reacher)}
    return (
        f"What you saw: {reacher.persona.name} reached out {reacher.logs['me']} times, so "
        f"{_percent(reacher.share_of_nudges('restraint'))} of {reacher.persona.name}'s "
        f"nudges were restraint ({steady.persona.name}: "
        f"{_percent(steady.share_of_nudges('restraint'))}). {reached.persona.name}'s partner "
        f"reached out {reached.logs['them']} times: {tips} tips came back in the replies, and "
        f"{reached.persona.name} got {activities[reached.persona.name]} activity nudges "
        f"({reacher.persona.name}: {activities[reacher.persona.name]})."
    )
