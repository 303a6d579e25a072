"""Domain rules of a signup (issue 11): one mailbox however it is spelled, at most
3 confirmations an address a day and one per 10 minutes, and channels that are
one person only once that person proved both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import func, select

from service.addresses import AddressHasher, mailbox_key
from service.channels import ChannelKind
from service.people import subscriptions
from service.storage.db import session_factory
from service.storage.models import Channel, Message, Subscriber

NOON = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
SECRET = "test-secret-key-that-is-long-enough-0123456789"
HASHER = AddressHasher(SECRET)
PHONE = "+12125550142"


def request(phone: str | None = None, email: str | None = None) -> subscriptions.SignupRequest:
    return subscriptions.SignupRequest(
        phone=phone,
        email=email,
        timezone="America/New_York",
        consent_method="web_form",
        consent_evidence={},
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Sam.Lee@Example.com", "sam.lee@example.com"),
        ("sam+news@example.com", "sam@example.com"),
        ("s.a.m.lee+x@GoogleMail.com", "samlee@gmail.com"),
    ],
)
def test_spellings_of_one_mailbox_share_a_key(a: str, b: str) -> None:
    assert mailbox_key("email", a) == mailbox_key("email", b)


def test_dots_matter_outside_gmail_and_phone_numbers_are_their_own_key() -> None:
    assert mailbox_key("email", "sam.lee@example.com") != mailbox_key("email", "samlee@example.com")
    assert mailbox_key("sms", PHONE) == PHONE


def test_confirmations_are_capped_at_one_per_10_minutes_and_3_a_day(database_url: str) -> None:
    sessions = session_factory(database_url)
    queued: list[datetime] = []
    for minutes in range(0, 24 * 60, 5):  # a signup every 5 minutes for a day
        now = NOON + timedelta(minutes=minutes)
        with sessions.begin() as session:
            sent = subscriptions.subscribe(session, request(phone=PHONE), HASHER, now)
        queued += [now] * len(sent)
    assert len(queued) == 3
    assert all(b - a >= timedelta(minutes=10) for a, b in pairwise(queued))
    with sessions.begin() as session:
        later = subscriptions.subscribe(
            session, request(phone=PHONE), HASHER, queued[0] + timedelta(days=1, minutes=1)
        )
    assert len(later) == 1, "a day after the first, one more may go"


def test_a_phone_and_an_email_given_together_are_two_people(database_url: str) -> None:
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        subscriptions.subscribe(session, request(PHONE, "sam@example.com"), HASHER, NOON)
    with sessions() as session:
        owners = dict(session.execute(select(Channel.kind, Channel.subscriber_id)).all())
        assert owners[ChannelKind.SMS] != owners[ChannelKind.EMAIL]
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 2


def test_a_join_waits_apart_until_confirmed_on_itself(database_url: str) -> None:
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        subscriptions.subscribe(session, request(email="sam@example.com"), HASHER, NOON)
    with sessions.begin() as session:
        email = session.scalars(select(Channel)).one()
        subscriptions.confirm(session, email, {}, NOON)
        message = subscriptions.request_join(
            session, email, ChannelKind.SMS, PHONE, request(phone=PHONE), HASHER, NOON
        )
        assert message is not None
    with sessions.begin() as session:
        email = session.scalars(select(Channel).where(Channel.kind == "email")).one()
        phone = session.scalars(select(Channel).where(Channel.kind == "sms")).one()
        assert phone.subscriber_id != email.subscriber_id, "pending: not one person yet"
        assert [c.kind for c in subscriptions.proven_channels(email.subscriber, email)] == ["email"]
        subscriptions.confirm(session, phone, {"keyword": "yes"}, NOON)
    with sessions() as session:
        email = session.scalars(select(Channel).where(Channel.kind == "email")).one()
        phone = session.scalars(select(Channel).where(Channel.kind == "sms")).one()
        assert phone.subscriber_id == email.subscriber_id
        shown = {c.kind for c in subscriptions.proven_channels(email.subscriber, email)}
        assert shown == {"sms", "email"}
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1, (
            "the waiting person is gone"
        )
        owners = set(session.scalars(select(Message.subscriber_id)))
        assert owners == {email.subscriber_id}, "the phone's confirmation moved with it"


def test_a_join_needs_a_confirmed_channel_to_ask(database_url: str) -> None:
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        subscriptions.subscribe(session, request(email="sam@example.com"), HASHER, NOON)
        email = session.scalars(select(Channel)).one()
        assert (
            subscriptions.request_join(
                session, email, ChannelKind.SMS, PHONE, request(phone=PHONE), HASHER, NOON
            )
            is None
        )
        assert session.scalar(select(func.count()).select_from(Channel)) == 1


def test_two_channels_of_one_person_without_proof_stay_apart(database_url: str) -> None:
    """Pairs signed up together before issue 11 share a person but not their links."""
    sessions = session_factory(database_url)
    with sessions.begin() as session:
        person = Subscriber(timezone="America/New_York", created_at=NOON)
        for kind, address in ((ChannelKind.SMS, PHONE), (ChannelKind.EMAIL, "sam@example.com")):
            person.channels.append(
                Channel(kind=kind, address=address, status="active", confirmed_at=NOON)
            )
        session.add(person)
    with sessions() as session:
        person = session.scalars(select(Subscriber)).one()
        for channel in person.channels:
            assert subscriptions.proven_channels(person, channel) == [channel]
