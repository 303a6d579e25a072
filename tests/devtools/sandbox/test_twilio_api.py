"""The sandbox's Twilio Messages API, through the real `twilio` SDK: create, list, fetch, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.messages.segments import count_segments
from tests.devtools.sandbox.builders import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, callbacks_for

# --- Twilio Messages API --------------------------------------------------------------------


def test_created_message_parses_into_the_sdks_message_instance(twilio: Client) -> None:
    message = twilio.messages.create(to="+15551230001", from_=FROM_NUMBER, body="Héllo ✨")

    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert message.account_sid == ACCOUNT_SID
    assert (message.to, message.from_, message.body) == ("+15551230001", FROM_NUMBER, "Héllo ✨")
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.num_segments == "1"
    assert abs(message.date_created - datetime.now(UTC)) < timedelta(seconds=5)
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"


def test_create_without_to_answers_twilios_error_json_21604(sandbox: SandboxServer) -> None:
    response = httpx.post(
        f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"From": FROM_NUMBER, "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": 21604,
        "message": "A 'To' phone number is required.",
        "more_info": "https://www.twilio.com/docs/errors/21604",
        "status": 400,
    }


def test_create_without_body_is_refused_through_the_sdk_with_21602(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio.messages.create(to="+15551230002", from_=FROM_NUMBER, body="")

    assert (caught.value.status, caught.value.code) == (400, 21602)


def test_create_without_credentials_answers_401(sandbox: SandboxServer) -> None:
    response = httpx.post(
        f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+15551230003", "From": FROM_NUMBER, "Body": "hi"},
    )

    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_list_filters_by_to_and_date_sent_and_pages_like_twilio(twilio: Client) -> None:
    for n in range(5):
        twilio.messages.create(to="+15551230004", from_=FROM_NUMBER, body=f"n{n}")
    twilio.messages.create(to="+15551239999", from_=FROM_NUMBER, body="other")
    yesterday = datetime.now(UTC) - timedelta(days=1)

    listed = twilio.messages.list(to="+15551230004", date_sent_after=yesterday, page_size=2)
    future = twilio.messages.list(date_sent_after=datetime.now(UTC) + timedelta(days=1))

    assert [m.body for m in listed] == ["n4", "n3", "n2", "n1", "n0"]  # newest first
    assert future == []
    first_page = twilio.messages.page(to="+15551230004", page_size=2)
    assert first_page.next_page_url is not None
    assert "Page=1" in first_page.next_page_url


def test_fetch_reports_the_status_the_callbacks_moved_it_to(
    twilio: Client, receiver: WebhookReceiver
) -> None:
    created = twilio.messages.create(
        to="+15551230005",
        from_=FROM_NUMBER,
        body="hi",
        status_callback=f"{receiver.url}/webhooks/twilio/status",
    )
    receiver.wait_for(callbacks_for(created.sid), count=2)

    fetched = twilio.messages(created.sid).fetch()

    assert fetched.status == "delivered"
    assert fetched.date_sent is not None


def test_fetch_of_an_unknown_sid_is_twilios_404(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio.messages("SM" + "0" * 32).fetch()

    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_undelivered_fault_ends_with_an_undelivered_callback_carrying_the_error_code(
    sandbox: SandboxServer, twilio: Client, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(match_to="+15551230006", callback_status="undelivered", error_code="30005")
    url = f"{receiver.url}/webhooks/twilio/status?m=6"

    created = twilio.messages.create(
        to="+15551230006", from_=FROM_NUMBER, body="hi", status_callback=url
    )

    arrived = receiver.wait_for(callbacks_for(created.sid), count=2)
    forms = [r.form() for r in arrived]
    assert [f["MessageStatus"] for f in forms] == ["sent", "undelivered"]
    assert "ErrorCode" not in forms[0]
    assert forms[1]["ErrorCode"] == "30005"
    assert RequestValidator(AUTH_TOKEN).validate(
        url, forms[1], arrived[1].header("X-Twilio-Signature")
    )


def test_failed_fault_sends_one_failed_callback(
    sandbox: SandboxServer, twilio: Client, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(callback_status="failed", error_code="30007", times=1)

    created = twilio.messages.create(
        to="+15551230007",
        from_=FROM_NUMBER,
        body="hi",
        status_callback=f"{receiver.url}/webhooks/twilio/status",
    )

    receiver.wait_for(callbacks_for(created.sid), count=2, timeout=0.5)
    forms = [r.form() for r in receiver.requests if r.form().get("MessageSid") == created.sid]
    assert [(f["MessageStatus"], f["ErrorCode"]) for f in forms] == [("failed", "30007")]


def test_fault_with_times_applies_that_many_times_only(
    sandbox: SandboxServer, twilio: Client
) -> None:
    sandbox.add_fault(http_status=503, times=2)

    outcomes = []
    for _ in range(3):
        try:
            twilio.messages.create(to="+15551230008", from_=FROM_NUMBER, body="hi")
            outcomes.append("sent")
        except TwilioRestException as exc:
            outcomes.append(exc.status)

    assert outcomes == [503, 503, "sent"]


def test_bad_fault_rule_is_refused(sandbox: SandboxServer) -> None:
    response = httpx.post(f"{sandbox.url}/sandbox/faults", json={"http_status": 200})
    unknown = httpx.post(f"{sandbox.url}/sandbox/faults", json={"status": 500})

    assert response.status_code == 400
    assert unknown.status_code == 400
    assert "status" in unknown.json()["error"]


def test_segments_are_counted_as_twilio_bills_them() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("{" * 80) == 1  # extension characters take two septets
    assert count_segments("{" * 81) == 2
    assert count_segments("✨" * 70) == 1
    assert count_segments("✨" * 71) == 2
