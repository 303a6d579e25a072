"""The sandbox's SendGrid Mail Send, Email Activity and signed events, through the real SDK."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook

from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from tests.devtools.sandbox.builders import _mail


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
