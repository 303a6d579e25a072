"""The planner and dispatcher keep every candidate zone's quiet hours, on a real database.

Subscribers in every zone of the matrix, and subscribers whose zone is only what
their real number allows (split US area codes, an Australian mobile, Labrador, the
Canadian north, Alaska), are run through the real runtime (plan, dispatch) from the
day before to the day after each daylight-saving change of 2027. Every nudge that
goes out must go at a local time inside [08:00, 20:00) in every candidate zone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select, update

from service.channels import ChannelKind
from service.messages.catalog import NUDGE_KINDS
from service.pacing.window import join_zones, split_zones
from service.people.zones.numbers import guess_for_number
from service.storage.models import Channel, ChannelStatus, Message, Subscriber
from tests.support.world import Harness, make_settings
from tests.support.zones import NAMED, TRANSITION_DATES, day_start, inside_hours, local

# Real numbers in exchanges that phonenumbers places only by a split area code, and
# mobiles that fit several zones (tests/people/test_zones.py checks their candidates).
NUMBERS = {
    "Indiana 812": "+18122005555",
    "Indiana 219": "+12192005555",
    "Florida 850": "+18502005555",
    "Kentucky 270": "+12702005555",
    "Michigan 906": "+19062005555",
    "Tennessee 423": "+14232005555",
    "Kansas 620": "+16202005555",
    "Oregon 541": "+15412005555",
    "North Dakota 701": "+17015551234",
    "Idaho 208": "+12085551234",
    "Alaska 907": "+19075551234",
    "Labrador 709": "+17095551234",
    "Canadian north 867": "+18675551234",
    "Australian mobile": "+61412345678",
    "UK mobile": "+447911123456",
}
# Zones that share no sending hours: a stand-in for a number nobody can place.
NO_SHARED_HOURS = ("Pacific/Honolulu", "Asia/Kolkata", "Europe/London")
NUDGE_KIND_VALUES = [str(kind) for kind in NUDGE_KINDS]
MAX_TICKS_PER_CHANGE = 400


def enrol(
    harness: Harness, address: str, timezone: str, candidates: tuple[str, ...], now: datetime
) -> None:
    with harness.runtime.sessions.begin() as session:
        subscriber = Subscriber(
            timezone=timezone,
            timezone_candidates=join_zones(candidates),
            next_plan_at=now,
            created_at=now,
        )
        subscriber.channels.append(
            Channel(
                kind=ChannelKind.SMS,
                address=address,
                status=ChannelStatus.ACTIVE,
                consent_at=now,
                consent_method="import",
                confirmed_at=now,
            )
        )
        session.add(subscriber)


def next_event(harness: Harness, after: datetime) -> datetime | None:
    """The next moment anything is due: a planning or a scheduled send."""
    with harness.runtime.sessions() as session:
        plans = session.scalars(
            select(Subscriber.next_plan_at).where(Subscriber.next_plan_at.is_not(None))
        ).all()
        sends = session.scalars(
            select(Message.scheduled_for).where(Message.status == "scheduled")
        ).all()
    due = [at for at in (*plans, *sends) if at is not None]
    return max(min(due), after) if due else None


def run_through(harness: Harness, start: datetime, stop: datetime) -> None:
    """Tick the real runtime at every moment something is due, from start to stop."""
    now: datetime | None = start
    for _ in range(MAX_TICKS_PER_CHANGE):
        if now is None or now >= stop:
            return
        harness.tick(now)
        now = next_event(harness, now)
        if now == harness.now:
            # What this tick settled is due again at once: plan it in a second pass.
            harness.tick(now)
            now = next_event(harness, now + timedelta(seconds=1))
    raise AssertionError(
        "the simulation did not reach its end (a nudge planned and refused again and again?)"
    )


def test_every_nudge_keeps_every_candidate_zone_through_each_2027_change(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    start = day_start(TRANSITION_DATES[0] - timedelta(days=1))
    expected: dict[str, tuple[str, ...]] = {}
    for index, zone in enumerate(NAMED.values()):
        enrol(harness, f"+1202555{index:04d}", zone, (), start)
        expected[f"+1202555{index:04d}"] = (zone,)
    for number in NUMBERS.values():
        guess = guess_for_number(number, "America/New_York", start)
        enrol(harness, number, guess.timezone, guess.candidates, start)
        expected[number] = guess.candidates or (guess.timezone,)
    enrol(harness, "+12025559999", NO_SHARED_HOURS[0], NO_SHARED_HOURS, start)
    expected["+12025559999"] = NO_SHARED_HOURS
    assert sum(len(zones) > 1 for zones in expected.values()) >= 14

    for change in TRANSITION_DATES:
        run_through(
            harness, day_start(change - timedelta(days=1)), day_start(change + timedelta(days=2))
        )

    with harness.runtime.sessions() as session:
        rows = session.execute(
            select(
                Channel.address, Message.status, Message.sent_at, Message.error_detail, Message.kind
            )
            .join(Channel, Channel.id == Message.channel_id)
            .where(Message.kind.in_(NUDGE_KIND_VALUES))
        ).all()
        stored = dict(
            session.execute(
                select(Channel.address, Subscriber.timezone_candidates).join(Subscriber)
            ).all()
        )
    sent: dict[str, list[datetime]] = defaultdict(list)
    for address, status, sent_at, detail, _kind in rows:
        assert detail != "outside_window", "the planner scheduled a nudge the dispatcher refused"
        if status == "sent":
            sent[address].append(sent_at)
    outside = [
        (address, zone, at)
        for address, times in sent.items()
        for at in times
        for zone in expected[address]
        if not inside_hours(at, zone, (8, 20))
    ]
    assert outside == []
    # Everyone who shares hours got nudges around every change; the rest got none.
    for address, zones in expected.items():
        if zones == NO_SHARED_HOURS:
            assert sent[address] == []
        else:
            assert len(sent[address]) >= len(TRANSITION_DATES), address
    # The planner read the candidates from the row, not a single zone.
    assert split_zones(stored[NUMBERS["Indiana 812"]]) == ("America/New_York", "America/Chicago")
    assert len(harness.sms.sent) == sum(len(times) for times in sent.values())


def test_the_dispatcher_refuses_a_nudge_outside_any_candidate_zones_hours(
    database_url: str,
) -> None:
    """Its last guard reads the candidates too: 08:30 in New York is 07:30 in Chicago."""
    harness = Harness(make_settings(database_url))
    at = local("2027-06-01T08:30", "America/New_York")
    split = ("America/New_York", "America/Chicago")
    enrol(harness, "+18122005555", split[0], split, at)
    enrol(harness, "+12125550142", "America/New_York", (), at)
    with harness.runtime.sessions.begin() as session:
        for channel in session.scalars(select(Channel)):
            session.add(
                Message(
                    subscriber_id=channel.subscriber_id,
                    channel_id=channel.id,
                    channel="sms",
                    kind="activity",
                    template="activity_friends_1",
                    rule="activity_rotation",
                    scheduled_for=at,
                    expires_at=at + timedelta(hours=2),
                    created_at=at,
                )
            )
        session.execute(update(Subscriber).values(next_plan_at=None))
    harness.runtime.dispatch(at)
    with harness.runtime.sessions() as session:
        outcome = dict(
            session.execute(
                select(Channel.address, Message.error_detail).join(
                    Channel, Channel.id == Message.channel_id
                )
            ).all()
        )
    assert outcome["+18122005555"] == "outside_window"
    assert [m.to for m in harness.sms.sent] == ["+12125550142"]
