"""`planning_reads.pacing_state` builds the state positionally (for speed): each of a
person's columns must land in the field of the same meaning."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

from service.channels import ChannelKind
from service.messages.catalog import Kind
from service.pacing.rules import ContactEntry, PastNudge
from service.sending.planning_reads import pacing_state


def test_pacing_state_puts_each_column_in_its_field() -> None:
    def at(day: int) -> datetime:
        return datetime(2026, 3, day, 12, tzinfo=UTC)

    sub = SimpleNamespace(
        id=7,
        timezone="Europe/Berlin",
        timezone_candidates="Europe/Berlin Europe/Paris",
        cadence_per_week=5,
        hour_start=9,
        hour_end=19,
        activity_areas="fitness",
        separation_date=date(2026, 1, 2),
        paused_until=at(1),
        welcomed=True,
        last_engaged_at=at(2),
        last_done_at=at(3),
    )
    nudge = PastNudge(Kind.ACTIVITY, "activity_fitness_1", ChannelKind.SMS, at(5))
    reply = PastNudge(Kind.RESTRAINT, "restraint_1", ChannelKind.SMS, at(6))
    contact = ContactEntry("me", at(7))
    state = pacing_state(
        sub, (3, ChannelKind.EMAIL, at(4)), {7: [nudge]}, {7: [reply]}, {7: [contact]}
    )
    assert state.subscriber_id == 7
    assert state.timezone == "Europe/Berlin"
    assert state.channel == ChannelKind.EMAIL
    assert state.cadence_per_week == 5
    assert state.hours == (9, 19)
    assert state.activity_areas == ("fitness",)
    assert state.separation_date == date(2026, 1, 2)
    assert state.paused_until == at(1)
    assert state.active_since == at(4)
    assert state.welcomed is True
    assert state.last_engaged_at == at(2)
    assert state.last_done_at == at(3)
    assert state.recent_nudges == (nudge,)
    assert state.recent_replies == (reply,)
    assert state.contacts == (contact,)
    assert state.candidate_zones == ("Europe/Berlin", "Europe/Paris")
    assert (nudge.kind, nudge.template, nudge.channel, nudge.at) == (
        Kind.ACTIVITY,
        "activity_fitness_1",
        ChannelKind.SMS,
        at(5),
    )
    assert (contact.initiator, contact.at) == ("me", at(7))
