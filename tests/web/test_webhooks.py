"""Provider webhooks through HTTP: signatures, duplicates, order, raw payloads.

Twilio callbacks are signed with the `twilio` package's own RequestValidator and
SendGrid events with the sandbox's ECDSA key, exactly as the providers sign them.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from service.devtools.sandbox.state import SigningKey
from service.sending.claims import Outcome, claim_due, record_outcomes
from service.storage.models import Channel, DeliveryEvent, Message, Suppression
from service.tokens import Purpose, make_token
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, confirmation, make_settings

PHONE = "+12125550142"
EMAIL = "sam@example.com"
STATUS_PATH = "/webhooks/twilio/status"
EVENTS_PATH = "/webhooks/sendgrid/events"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

SIGNING_KEY = SigningKey.generate()


@pytest.fixture
def harness(database_url: str) -> Harness:
    settings = make_settings(database_url, SENDGRID_WEBHOOK_PUBLIC_KEY=SIGNING_KEY.public_key_b64)
    harness = Harness(settings)
    response = harness.client.post(
        "/subscribe", json={"phone": PHONE, "email": EMAIL, "consent": True}
    )
    assert response.status_code == 202
    harness.tick()  # the two confirmations go out
    return harness


def post_status(
    harness: Harness, params: dict[str, str], *, query: str = "", url: str | None = None
) -> Any:
    """A status callback signed as Twilio signs it: over the full URL it posted to."""
    path = STATUS_PATH + (f"?{query}" if query else "")
    signed_url = url or PUBLIC_URL + path
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(signed_url, params)
    return harness.client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def status_params(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "MessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "To": PHONE,
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


def post_events(
    harness: Harness,
    events: list[dict[str, Any]] | bytes,
    *,
    timestamp: str | None = None,
    signature: str | None = None,
    key: SigningKey = SIGNING_KEY,
) -> Any:
    body = events if isinstance(events, bytes) else json.dumps(events).encode("utf-8")
    stamp = timestamp if timestamp is not None else str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature if signature is not None else key.sign(stamp, body),
        TIMESTAMP_HEADER: stamp,
    }
    return harness.client.post(EVENTS_PATH, content=body, headers=headers)


def email_event(message: Message, event: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "steady_message_id": str(message.id),
        "email": EMAIL,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": event_id,
        "sg_message_id": f"{message.provider_id}.filterdrecv-1-0-0.0",
        **extra,
    }


def count(harness: Harness, model: type[Any]) -> int:
    with harness.runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def channel_status(harness: Harness, kind: str) -> str:
    with harness.runtime.sessions() as session:
        status = session.scalar(select(Channel.status).where(Channel.kind == kind))
        assert status is not None
        return status


# --- Twilio status callbacks -------------------------------------------------------------


def test_status_callback_without_signature_is_403_and_records_nothing(harness: Harness) -> None:
    sms = confirmation(harness, "sms")
    response = harness.client.post(
        STATUS_PATH, data=status_params(str(sms.provider_id), "delivered")
    )
    assert response.status_code == 403
    assert count(harness, DeliveryEvent) == 0
    assert confirmation(harness, "sms").status == "sent"


def test_status_callback_with_a_bad_signature_is_403(harness: Harness) -> None:
    sms = confirmation(harness, "sms")
    params = status_params(str(sms.provider_id), "delivered")
    response = harness.client.post(
        STATUS_PATH, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )
    assert response.status_code == 403
    assert confirmation(harness, "sms").status == "sent"


def test_status_callback_signed_for_the_host_header_instead_of_public_url_is_403(
    harness: Harness,
) -> None:
    sms = confirmation(harness, "sms")
    params = status_params(str(sms.provider_id), "delivered")
    response = post_status(harness, params, url=f"http://testserver{STATUS_PATH}")
    assert response.status_code == 403


def test_status_callback_signature_covers_our_query_string(harness: Harness) -> None:
    sms = confirmation(harness, "sms")
    params = status_params(str(sms.provider_id), "delivered")
    # Signed for ?m=<id> but posted with another id: the URL Twilio signed is not this one.
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(
        f"{PUBLIC_URL}{STATUS_PATH}?m={sms.id}", params
    )
    response = harness.client.post(
        f"{STATUS_PATH}?m={sms.id + 1}", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403
    assert post_status(harness, params, query=f"m={sms.id}").status_code == 200
    assert confirmation(harness, "sms").status == "delivered"


def test_same_failure_callback_five_times_is_one_event_and_one_effect(harness: Harness) -> None:
    sms = confirmation(harness, "sms")
    params = status_params(str(sms.provider_id), "undelivered", "21610")
    for _ in range(5):
        assert post_status(harness, params, query=f"m={sms.id}").status_code == 200
    with harness.runtime.sessions() as session:
        events = session.scalars(select(DeliveryEvent)).all()
        assert [(e.message_id, e.event_type, e.error_code) for e in events] == [
            (sms.id, "undelivered", "21610")
        ]
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert confirmation(harness, "sms").status == "undelivered"
    assert channel_status(harness, "sms") == "stopped"


def test_delivered_then_a_late_sent_stays_delivered(harness: Harness) -> None:
    sms = confirmation(harness, "sms")
    sid = str(sms.provider_id)
    assert (
        post_status(harness, status_params(sid, "delivered"), query=f"m={sms.id}").status_code
        == 200
    )
    assert post_status(harness, status_params(sid, "sent"), query=f"m={sms.id}").status_code == 200
    assert confirmation(harness, "sms").status == "delivered"
    assert count(harness, DeliveryEvent) == 2, "the late report is still kept"


def test_callback_arriving_before_the_dispatcher_commits_is_matched_by_our_id(
    database_url: str,
) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    lease = timedelta(seconds=harness.settings.send_lease_seconds)
    with harness.runtime.sessions() as session:
        [message_id] = claim_due(session, harness.now, 10, lease)
        session.commit()
    # Twilio answered the API call and calls back before our own write of its SID.
    params = status_params("SM" + "a" * 32, "delivered")
    assert post_status(harness, params, query=f"m={message_id}").status_code == 200
    with harness.runtime.sessions() as session:
        message = session.get(Message, message_id)
        assert message is not None
        assert (message.status, message.provider_id) == ("delivered", "SM" + "a" * 32)
        # Now the dispatcher records its result: the callback's verdict stands.
        outcome = Outcome(
            message_id=message_id,
            subscriber_id=message.subscriber_id,
            channel="sms",
            kind="confirm",
            template="confirm",
            rule="double_opt_in",
            status="sent",
            provider_id="SM" + "a" * 32,
            detail="twilio",
        )
        record_outcomes(session.connection(), [outcome], harness.now)
        session.commit()
        session.expire_all()
        assert session.get(Message, message_id).status == "delivered"  # type: ignore[union-attr]


def test_our_id_naming_a_message_with_another_provider_id_is_not_trusted(
    harness: Harness,
) -> None:
    sms = confirmation(harness, "sms")
    params = status_params("SM" + "f" * 32, "undelivered", "30005")
    assert post_status(harness, params, query=f"m={sms.id}").status_code == 200
    assert confirmation(harness, "sms").status == "sent"
    assert channel_status(harness, "sms") == "pending"


def test_status_for_an_unknown_message_is_200_and_kept_raw(harness: Harness) -> None:
    params = status_params("SM" + "0" * 32, "delivered")
    assert post_status(harness, params).status_code == 200
    with harness.runtime.sessions() as session:
        event = session.scalar(select(DeliveryEvent))
        assert event is not None
        assert event.message_id is None
        assert event.payload == params


# --- SendGrid events ---------------------------------------------------------------------


def test_signed_sendgrid_events_move_the_email_forward(harness: Harness) -> None:
    email = confirmation(harness, "email")
    events = [email_event(email, "processed", "ev-1"), email_event(email, "delivered", "ev-2")]
    assert post_events(harness, events).status_code == 200
    assert confirmation(harness, "email").status == "delivered"
    with harness.runtime.sessions() as session:
        stored = session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id)).all()
        assert [e.event_key for e in stored] == ["sendgrid:ev-1", "sendgrid:ev-2"]
        assert stored[1].payload == events[1]


def test_sendgrid_event_with_a_bad_signature_is_403(harness: Harness) -> None:
    email = confirmation(harness, "email")
    other_key = SigningKey.generate()
    response = post_events(harness, [email_event(email, "bounce", "ev-1")], key=other_key)
    assert response.status_code == 403
    assert channel_status(harness, "email") == "pending"
    assert count(harness, DeliveryEvent) == 0


def test_sendgrid_event_without_signature_headers_is_403_when_a_key_is_set(
    harness: Harness,
) -> None:
    email = confirmation(harness, "email")
    response = harness.client.post(EVENTS_PATH, json=[email_event(email, "bounce", "ev-1")])
    assert response.status_code == 403


def test_sendgrid_event_signed_eleven_minutes_ago_is_403(harness: Harness) -> None:
    email = confirmation(harness, "email")
    stamp = str(int(time.time()) - 11 * 60)
    response = post_events(harness, [email_event(email, "bounce", "ev-1")], timestamp=stamp)
    assert response.status_code == 403
    assert channel_status(harness, "email") == "pending"


def test_sendgrid_event_signed_nine_minutes_ago_is_accepted(harness: Harness) -> None:
    email = confirmation(harness, "email")
    stamp = str(int(time.time()) - 9 * 60)
    response = post_events(harness, [email_event(email, "delivered", "ev-1")], timestamp=stamp)
    assert response.status_code == 200


def test_sendgrid_event_dated_far_in_the_future_is_403(harness: Harness) -> None:
    email = confirmation(harness, "email")
    stamp = str(int(time.time()) + 3600)
    response = post_events(harness, [email_event(email, "delivered", "ev-1")], timestamp=stamp)
    assert response.status_code == 403


def test_sendgrid_signature_is_over_the_raw_body_bytes(harness: Harness) -> None:
    email = confirmation(harness, "email")
    events = [email_event(email, "delivered", "ev-1")]
    stamp = str(int(time.time()))
    compact = json.dumps(events, separators=(",", ":")).encode()
    spaced = json.dumps(events, indent=2).encode()  # same JSON, different bytes
    signature = SIGNING_KEY.sign(stamp, compact)
    assert post_events(harness, spaced, timestamp=stamp, signature=signature).status_code == 403
    assert post_events(harness, compact, timestamp=stamp, signature=signature).status_code == 200


@pytest.mark.parametrize("body", [b"not json", b'{"event": "delivered"}', b"[1, 2]"])
def test_malformed_sendgrid_body_is_400(harness: Harness, body: bytes) -> None:
    assert post_events(harness, body).status_code == 400
    assert count(harness, DeliveryEvent) == 0


def test_unsigned_sendgrid_events_are_accepted_when_no_key_is_configured(
    database_url: str,
) -> None:
    harness = Harness(make_settings(database_url))
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.tick()
    email = confirmation(harness, "email")
    response = harness.client.post(EVENTS_PATH, json=[email_event(email, "delivered", "ev-1")])
    assert response.status_code == 200
    assert confirmation(harness, "email").status == "delivered"


def test_event_without_custom_args_is_matched_by_the_x_message_id_prefix(
    harness: Harness,
) -> None:
    email = confirmation(harness, "email")
    event = email_event(email, "delivered", "ev-1")
    del event["steady_message_id"]
    assert post_events(harness, [event]).status_code == 200
    assert confirmation(harness, "email").status == "delivered"


def test_event_naming_a_message_but_another_address_changes_nothing(harness: Harness) -> None:
    email = confirmation(harness, "email")
    event = email_event(email, "bounce", "ev-1", type="bounce")
    event["email"] = "someone.else@example.com"
    assert post_events(harness, [event]).status_code == 200
    assert channel_status(harness, "email") == "pending"
    assert confirmation(harness, "email").status == "sent"


def test_tokens_are_not_accepted_as_message_ids(harness: Harness) -> None:
    email = confirmation(harness, "email")
    token = make_token(harness.settings.secret_key.get_secret_value(), Purpose.CONFIRM, email.id)
    event = email_event(email, "bounce", "ev-1")
    event["steady_message_id"] = token
    event["sg_message_id"] = "unknown.filter"
    assert post_events(harness, [event]).status_code == 200
    assert channel_status(harness, "email") == "pending"
