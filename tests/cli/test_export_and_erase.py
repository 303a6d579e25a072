"""`steady subscribers export` round trips; `erase` keeps only suppression hashes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from service.channels import ChannelKind
from service.people import subscriptions
from service.storage.db import session_factory
from service.storage.models import (
    ActivityLog,
    Channel,
    ContactLog,
    DeliveryEvent,
    InboundMessage,
    Message,
    Subscriber,
    Suppression,
)
from tests.cli.operator import HASHER, count, invoke, write_csv


def test_export_csv_and_json_round_trip(db: str, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "+12125550142,,America/Chicago,\n,ann@example.com,,form 9\n+12125550144,bo@example.org,,\n",
    )
    assert invoke("subscribers", "import", str(path)).exit_code == 0

    exported = invoke("subscribers", "export")
    as_json = invoke("subscribers", "export", "--json")

    assert exported.exit_code == as_json.exit_code == 0
    lines = exported.stdout.splitlines()
    assert lines[0] == "id,phone,email,timezone,status_sms,status_email,created_at"
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    objects = json.loads(as_json.stdout)
    assert len(rows) == len(objects) == count(db, Subscriber) == 4
    assert [r["id"] for r in rows] == [str(o["id"]) for o in objects]
    by_email = {o["email"]: o for o in objects}
    assert by_email["ann@example.com"]["status_email"] == "active"
    assert by_email["ann@example.com"]["status_sms"] is None
    assert by_email["bo@example.org"]["phone"] is None, "a phone beside it is another person"
    assert rows[0]["timezone"] == "America/Chicago"
    assert rows[0]["status_sms"] == "pending"
    assert datetime.fromisoformat(objects[0]["created_at"]).tzinfo is not None


def _person_with_history(url: str, phone: str, email: str) -> int:
    now = datetime.now(UTC)
    with session_factory(url).begin() as session:
        subscriptions.subscribe(
            session,
            subscriptions.SignupRequest(phone, None, "America/New_York", "web_form", {}),
            HASHER,
            now,
        )
        channel = session.scalars(select(Channel).where(Channel.address == phone)).one()
        # The email joins this person: asked for from the phone, confirmed on itself.
        subscriptions.confirm(session, channel, {}, now)
        join = subscriptions.SignupRequest(None, email, "America/New_York", "web_form", {})
        subscriptions.request_join(session, channel, ChannelKind.EMAIL, email, join, HASHER, now)
        joined = session.scalars(select(Channel).where(Channel.address == email)).one()
        subscriptions.confirm(session, joined, {}, now)
        inbound = InboundMessage(
            subscriber_id=channel.subscriber_id, channel_id=channel.id, body="ME", provider_id=phone
        )
        session.add(inbound)
        session.flush()
        session.add(ContactLog(subscriber_id=channel.subscriber_id, initiator="me"))
        session.add(ActivityLog(subscriber_id=channel.subscriber_id, area="fitness"))
        message = session.scalars(select(Message).where(Message.channel_id == channel.id)).one()
        session.add(
            DeliveryEvent(
                message_id=message.id,
                provider="twilio",
                event_key=f"evt-{phone}",
                event_type="delivered",
                payload={"To": phone},
            )
        )
        return channel.subscriber_id


def test_erase_removes_the_person_and_keeps_only_suppression_hashes(db: str) -> None:
    erased = _person_with_history(db, "+12125550142", "pat@example.com")
    kept = _person_with_history(db, "+12125550199", "other@example.com")

    result = invoke("subscribers", "erase", "(212) 555-0142")

    assert result.exit_code == 0, result.output
    assert f"erased subscriber {erased}" in result.stdout
    assert "messages 2" in result.stdout
    assert "channels 2" in result.stdout
    for model in (Channel, Message, InboundMessage, ContactLog, ActivityLog):
        assert count(db, model, model.subscriber_id == erased) == 0
    assert count(db, Subscriber, Subscriber.id == erased) == 0
    assert count(db, DeliveryEvent, DeliveryEvent.event_key == "evt-+12125550142") == 0
    assert count(db, Subscriber, Subscriber.id == kept) == 1
    assert count(db, Channel, Channel.subscriber_id == kept) == 2
    with session_factory(db)() as session:
        hashes = set(session.scalars(select(Suppression.address_hash)))
        assert hashes == {
            HASHER("+12125550142"),
            HASHER("pat@example.com"),
        }
    # Signing up again from an erased address sends nothing: it is on our own list.
    with session_factory(db).begin() as session:
        confirmations = subscriptions.subscribe(
            session,
            subscriptions.SignupRequest("+12125550142", None, "UTC", "web_form", {}),
            HASHER,
            datetime.now(UTC),
        )
        assert confirmations == []
    assert count(db, Channel, Channel.address == "+12125550142") == 0


def test_erase_of_an_unknown_address_exits_1(db: str) -> None:
    result = invoke("subscribers", "erase", "nobody@example.com")
    assert result.exit_code == 1
    assert "no subscriber has the email address" in result.stderr
    assert "nobody@" not in result.stderr, "the address is masked"
