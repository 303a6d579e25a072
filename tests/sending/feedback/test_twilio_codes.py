"""Twilio error codes the sandbox cannot produce on its own path, posted as Twilio signs them."""

from __future__ import annotations

from datetime import timedelta

import structlog
from twilio.request_validator import RequestValidator

from service.storage.models import Message
from tests.sending.feedback.steady import PHONE, STATUS_PATH, channel, nudges, subscriber
from tests.support.world import TEST_TWILIO_TOKEN, Harness


def post_status(harness: Harness, message: Message, status: str, code: str | None) -> None:
    """A status callback for one of our messages, signed as Twilio signs it."""
    params = {
        "MessageSid": str(message.provider_id),
        "MessageStatus": status,
        "AccountSid": "AC" + "1" * 32,
        "To": PHONE,
        "From": "+15005550006",
    }
    if code:
        params["ErrorCode"] = code
    path = f"{STATUS_PATH}?m={message.id}"
    url = harness.settings.public_url + path
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(url, params)
    response = harness.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def add_sent_sms(harness: Harness, n: int) -> list[Message]:
    """Earlier SMS nudges on the channel, sent and waiting for their callbacks."""
    sms = channel(harness, "sms")
    with harness.runtime.sessions() as session:
        rows = [
            Message(
                subscriber_id=sms.subscriber_id,
                channel_id=sms.id,
                channel="sms",
                kind="restraint",
                template="restraint_01",
                rule="restraint_mix",
                status="sent",
                scheduled_for=harness.now,
                sent_at=harness.now,
                provider="twilio",
                provider_id=f"SM{i:032x}",
            )
            for i in range(1, n + 1)
        ]
        session.add_all(rows)
        session.commit()
        for row in rows:
            session.refresh(row)
        session.expunge_all()
    return rows


def test_30003_suppresses_sms_only_on_the_third_in_a_row(plain: Harness) -> None:
    first, second, third = add_sent_sms(plain, 3)
    post_status(plain, first, "undelivered", "30003")
    post_status(plain, second, "undelivered", "30003")
    assert channel(plain, "sms").status == "active"
    post_status(plain, third, "undelivered", "30003")
    sms = channel(plain, "sms")
    assert (sms.status, sms.status_reason) == ("suppressed", "twilio_30003_x3")


def test_a_delivery_between_30003s_breaks_the_run(plain: Harness) -> None:
    messages = add_sent_sms(plain, 4)
    post_status(plain, messages[0], "undelivered", "30003")
    post_status(plain, messages[1], "undelivered", "30003")
    post_status(plain, messages[2], "delivered", None)
    post_status(plain, messages[3], "undelivered", "30003")
    assert channel(plain, "sms").status == "active"


def test_carrier_filtering_30007_pauses_flags_and_cancels_nudges(plain: Harness) -> None:
    [message] = add_sent_sms(plain, 1)
    assert nudges(plain, status="scheduled"), "a nudge is waiting"
    with structlog.testing.capture_logs() as logs:
        post_status(plain, message, "undelivered", "30007")
    person = subscriber(plain)
    assert person.flag_reason == "carrier_filtering_30007"
    assert person.flagged_at == plain.now
    assert person.paused_until == plain.now + timedelta(hours=24)
    assert nudges(plain, status="scheduled") == []
    assert [e["code"] for e in logs if e["event"] == "operator_alert"] == ["30007"]
    plain.tick(plain.now + timedelta(days=2))
    assert nudges(plain, status="scheduled") == [], "flagged: nothing until an operator looks"


def test_transient_30008_callback_is_recorded_without_touching_the_channel(
    plain: Harness,
) -> None:
    [message] = add_sent_sms(plain, 1)
    post_status(plain, message, "undelivered", "30008")
    assert channel(plain, "sms").status == "active"
    assert subscriber(plain).flagged_at is None
    assert nudges(plain, provider_id=str(message.provider_id))[0].error_code == "30008"


def test_an_error_code_on_a_delivered_report_changes_nothing(plain: Harness) -> None:
    [message] = add_sent_sms(plain, 1)
    post_status(plain, message, "delivered", "30005")
    assert channel(plain, "sms").status == "active"
