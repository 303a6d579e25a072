"""The sandbox's inbound texts, its inspection API, callbacks off, and its bounds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from sendgrid import SendGridAPIClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from service.devtools.sandbox.callbacks import CallbackSender
from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.devtools.sandbox.state import MessageLog, SandboxMessage
from tests.devtools.sandbox.builders import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    TWIML,
    _mail,
    callbacks_for,
)

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
