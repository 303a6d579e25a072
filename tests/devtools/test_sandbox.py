"""The sandbox speaks Twilio's and SendGrid's wire formats, and can be steered.

Requests come from the real SDKs, or from plain HTTP (httpx) where the point is
the raw wire shape; callbacks and inbound texts land in a real `WebhookReceiver`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from service.devtools.sandbox.callbacks import CallbackSender
from service.devtools.sandbox.receiver import ReceivedRequest, WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.devtools.sandbox.state import MessageLog, SandboxMessage
from service.messages.segments import count_segments

ACCOUNT_SID = "AC" + "fedcba9876543210" * 2
AUTH_TOKEN = "token-used-by-the-client"
FROM_NUMBER = "+15005550006"
TWIML = "<?xml version='1.0' encoding='UTF-8'?><Response><Message>Got it.</Message></Response>"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(twiml=TWIML) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    with SandboxServer(
        public_url=receiver.url, auth_token="steady-side-token", callback_delay_seconds=0.01
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxServer, receiver: WebhookReceiver) -> None:
    sandbox.reset()
    receiver.clear()


@pytest.fixture
def twilio(sandbox: SandboxServer) -> Client:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = sandbox.url
    return client


def callbacks_for(sid: str) -> Callable[[ReceivedRequest], bool]:
    def matches(request: ReceivedRequest) -> bool:
        return request.form().get("MessageSid") == sid

    return matches


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


# --- SendGrid Mail Send and events ----------------------------------------------------------


def _mail(to: str = "sam@example.org") -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"steady_message_id": "9"}}],
        "from": {"email": "nudges@steady.example"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hello"}],
        "categories": ["nudge"],
    }


def test_mail_send_through_the_sdk_answers_202_with_an_empty_body_and_message_id(
    sandbox: SandboxServer,
) -> None:
    client = SendGridAPIClient(api_key="SG.any", host=sandbox.url)

    response = client.send(_mail())

    assert response.status_code == 202
    assert response.body == b""
    assert len(response.headers["X-Message-Id"]) == 22


def test_mail_send_with_a_bad_shape_answers_sendgrids_error_json(sandbox: SandboxServer) -> None:
    response = httpx.post(
        f"{sandbox.url}/v3/mail/send",
        json={"personalizations": [], "content": []},
        headers={"Authorization": "Bearer SG.any"},
    )

    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"personalizations", "from.email", "subject", "content"}
    assert all(set(e) == {"message", "field", "help"} for e in response.json()["errors"])


def test_email_activity_filter_finds_a_mail_by_custom_arg_in_sendgrids_shape(
    sandbox: SandboxServer,
) -> None:
    client = SendGridAPIClient(api_key="SG.any", host=sandbox.url)
    x_message_id = client.send(_mail()).headers["X-Message-Id"]
    other = _mail("lee@example.org")
    other["personalizations"][0]["custom_args"] = {"steady_message_id": "10"}  # type: ignore[index]
    client.send(other)

    response = client.client.messages.get(
        query_params={"query": "unique_args['steady_message_id']=\"9\"", "limit": 10}
    )

    assert response.status_code == 200
    [found] = json.loads(response.body)["messages"]
    assert set(found) == {
        "from_email",
        "msg_id",
        "subject",
        "to_email",
        "status",
        "opens_count",
        "clicks_count",
        "last_event_time",
    }
    assert found["msg_id"].split(".", 1)[0] == x_message_id
    assert (found["to_email"], found["from_email"], found["subject"]) == (
        "sam@example.org",
        "nudges@steady.example",
        "Hi",
    )
    assert found["status"] in ("processed", "delivered")
    datetime.strptime(found["last_event_time"], "%Y-%m-%dT%H:%M:%SZ")


def test_email_activity_filter_combines_clauses_with_and(sandbox: SandboxServer) -> None:
    client = SendGridAPIClient(api_key="SG.any", host=sandbox.url)
    client.send(_mail())

    def found(query: str) -> int:
        response = client.client.messages.get(query_params={"query": query, "limit": 5})
        return len(json.loads(response.body)["messages"])

    assert found('(unique_args[\'steady_message_id\']="9") AND to_email="sam@example.org"') == 1
    assert found('unique_args[\'steady_message_id\']="9" AND to_email="lee@example.org"') == 0
    assert found("unique_args['steady_message_id']=\"99\"") == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query": "subject LIKE 'Hi%'", "limit": "10"}, "query"),
        ({"query": 'status="delivered"', "limit": "10"}, "query"),
        ({"query": 'to_email="sam@example.org"', "limit": "0"}, "limit"),
    ],
)
def test_email_activity_filter_refuses_what_it_does_not_support_with_a_clear_400(
    sandbox: SandboxServer, params: dict[str, str], field: str
) -> None:
    response = httpx.get(
        f"{sandbox.url}/v3/messages", params=params, headers={"Authorization": "Bearer SG.any"}
    )

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == field
    if field == "query":
        assert "unique_args" in error["message"]


def test_email_activity_filter_needs_a_key(sandbox: SandboxServer) -> None:
    assert httpx.get(f"{sandbox.url}/v3/messages").status_code == 401


def test_dropped_fault_sends_only_a_signed_dropped_event_with_custom_args_and_category(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(sendgrid_event="dropped")

    SendGridAPIClient(api_key="SG.any", host=sandbox.url).send(_mail("drop@example.org"))

    [post] = receiver.wait_for(lambda r: r.path == "/webhooks/sendgrid/events")
    time.sleep(0.1)  # nothing else should follow
    assert len([r for r in receiver.requests if r.path == "/webhooks/sendgrid/events"]) == 1
    [event] = json.loads(post.body)
    assert (event["event"], event["email"]) == ("dropped", "drop@example.org")
    assert (event["steady_message_id"], event["category"]) == ("9", ["nudge"])
    assert EventWebhook(sandbox.public_key_b64).verify_signature(
        post.body.decode(),
        post.header("X-Twilio-Email-Event-Webhook-Signature"),
        post.header("X-Twilio-Email-Event-Webhook-Timestamp"),
    )


def test_public_key_endpoint_serves_the_key_and_a_pem_file_fixes_it(
    sandbox: SandboxServer,
) -> None:
    served = httpx.get(f"{sandbox.url}/sandbox/public-key").json()["public_key"]
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with SandboxServer(signing_key_pem=pem, callbacks=False) as fixed:
        fixed_key = fixed.public_key_b64

    assert served == sandbox.public_key_b64
    expected = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert fixed_key == base64.b64encode(expected).decode("ascii")


# --- Inbound texts, inspection, callbacks off -----------------------------------------------


def test_inbound_simulation_posts_a_signed_twilio_webhook_and_returns_the_twiml(
    sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    answer = sandbox.inbound("+15551230010", "YES")

    assert answer["status"] == 200
    assert answer["twiml"] == TWIML
    [request] = receiver.wait_for(lambda r: r.path == "/webhooks/twilio/inbound")
    form = request.form()
    assert (form["From"], form["Body"], form["NumMedia"]) == ("+15551230010", "YES", "0")
    assert form["MessageSid"].startswith("SM")
    assert form["To"] == FROM_NUMBER
    assert RequestValidator("steady-side-token").validate(
        f"{receiver.url}/webhooks/twilio/inbound", form, request.header("X-Twilio-Signature")
    )
    [exchange] = sandbox.exchanges()
    assert (exchange["body"], exchange["status"], exchange["twiml"]) == ("YES", 200, TWIML)


def test_messages_and_stats_list_both_apis_in_order_and_reset_clears_them(
    sandbox: SandboxServer, twilio: Client
) -> None:
    twilio.messages.create(to="+15551230011", from_=FROM_NUMBER, body="one")
    SendGridAPIClient(api_key="SG.any", host=sandbox.url).send(_mail())
    twilio.messages.create(to="+15551230012", from_=FROM_NUMBER, body="three")

    listed = sandbox.messages()
    stats = sandbox.stats()
    sandbox.reset()

    assert [(m["api"], m.get("body") or m.get("subject")) for m in listed] == [
        ("twilio", "one"),
        ("sendgrid", "Hi"),
        ("twilio", "three"),
    ]
    assert stats["twilio"]["accepted"] == 2
    assert stats["sendgrid"]["accepted"] == 1
    assert sandbox.messages() == []
    assert sandbox.stats()["twilio"]["accepted"] == 0


def test_with_callbacks_off_nothing_is_posted_and_messages_settle_at_once(
    receiver: WebhookReceiver,
) -> None:
    with SandboxServer(public_url=receiver.url, callbacks=False) as quiet:
        client = Client(ACCOUNT_SID, AUTH_TOKEN)
        client.api.base_url = quiet.url
        created = client.messages.create(
            to="+15551230013",
            from_=FROM_NUMBER,
            body="hi",
            status_callback=f"{receiver.url}/webhooks/twilio/status",
        )
        time.sleep(0.1)
        status = client.messages(created.sid).fetch().status

    assert status == "delivered"
    assert not [r for r in receiver.requests if callbacks_for(created.sid)(r)]


def test_message_log_keeps_the_newest_messages_within_its_capacity() -> None:
    log = MessageLog(capacity=3)
    for n in range(5):
        log.add(SandboxMessage(api="twilio", id=f"SM{n}", to="+1", received_at=0.0, params={}))

    assert [m.id for m in log] == ["SM2", "SM3", "SM4"]
    assert log.get("SM0") is None
    assert log.get("SM4") is not None


def test_callback_queue_drops_and_counts_jobs_beyond_its_bound() -> None:
    async def fill() -> Counter[str]:
        counts: Counter[str] = Counter()
        sender = CallbackSender(counts, delay_seconds=0.0, queue_size=2)  # workers not started
        accepted = [sender.submit([lambda: None, lambda: None]) for _ in range(3)]
        assert accepted == [True, True, False]
        return counts

    assert asyncio.run(fill())["callbacks_dropped"] == 2


def test_a_request_held_by_a_timeout_fault_across_a_reset_is_not_recorded(
    sandbox: SandboxServer, twilio: Client
) -> None:
    sandbox.add_fault(timeout=True, sleep_seconds=0.5, times=1)
    url = f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = {"To": "+15551230014", "From": FROM_NUMBER, "Body": "held"}

    with httpx.Client() as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(url, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=0.1)
        sandbox.reset()
        time.sleep(0.2)  # the sandbox notices the hang-up within 50 ms

    assert sandbox.messages() == []


def test_config_check_lookups_answer_for_any_credentials(sandbox: SandboxServer) -> None:
    account = httpx.get(
        f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}.json", auth=(ACCOUNT_SID, "any")
    )
    anonymous = httpx.get(f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}.json")
    scopes = httpx.get(f"{sandbox.url}/v3/scopes", headers={"Authorization": "Bearer SG.any"})

    assert (account.status_code, account.json()["status"]) == (200, "active")
    assert account.json()["sid"] == ACCOUNT_SID
    assert anonymous.status_code == 401
    assert "mail.send" in scopes.json()["scopes"]


def test_an_undelivered_fault_without_an_error_code_still_reports_one(
    sandbox: SandboxServer, twilio: Client, receiver: WebhookReceiver
) -> None:
    sandbox.add_fault(callback_status="undelivered")

    created = twilio.messages.create(
        to="+15551230015",
        from_=FROM_NUMBER,
        body="hi",
        status_callback=f"{receiver.url}/webhooks/twilio/status",
    )

    arrived = receiver.wait_for(callbacks_for(created.sid), count=2)
    assert [(r.form()["MessageStatus"], r.form().get("ErrorCode")) for r in arrived] == [
        ("sent", None),
        ("undelivered", "30003"),
    ]
