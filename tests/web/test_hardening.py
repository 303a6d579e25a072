"""Hardened HTTP (issue 11, INTERFACE.md §2): headers on every page, HSTS in
production, no redirect built from Host, and a 4xx for every malformed input."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from service.storage.models import Channel, Message
from service.tokens import Purpose, make_token
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def harness(sqlite_url: str) -> Harness:
    harness = Harness(make_settings(sqlite_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN))
    harness.client.post("/subscribe", json={"email": "sam@example.com", "consent": True})
    harness.tick()
    return harness


def links(harness: Harness) -> list[str]:
    secret = harness.settings.secret_key.get_secret_value()
    with harness.runtime.sessions() as session:
        channel_id = session.scalar(select(Channel.id))
    assert channel_id is not None
    return [
        f"/confirm/{make_token(secret, Purpose.CONFIRM, channel_id)}",
        f"/u/{make_token(secret, Purpose.UNSUBSCRIBE, channel_id)}",
        f"/preferences/{make_token(secret, Purpose.PREFERENCES, channel_id)}",
    ]


def directives(policy: str) -> dict[str, str]:
    parsed = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        parsed[name] = value
    return parsed


def test_every_page_forbids_framing_scripts_and_sniffing(harness: Harness) -> None:
    pages = ["/", "/admin", "/confirm/not-a-token", *links(harness)]
    for path in pages:
        response = harness.client.get(path)
        assert response.headers["content-type"].startswith("text/html"), path
        policy = directives(response.headers["content-security-policy"])
        assert policy["frame-ancestors"] == "'none'", path
        assert policy["default-src"] == "'none'", "no script from anywhere, inline or not"
        assert "script-src" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
        assert "strict-transport-security" not in response.headers, "development"


def test_production_adds_hsts_to_every_response(sqlite_url: str) -> None:
    harness = Harness(make_settings(sqlite_url, STEADY_ENV="production"))
    for path in ("/", "/healthz", "/metrics", "/no-such-page", "/openapi.json"):
        hsts = harness.client.get(path).headers["strict-transport-security"]
        assert "max-age=" in hsts
        assert int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
    assert "strict-transport-security" in harness.client.post("/subscribe", json={}).headers


@pytest.mark.parametrize("path", ["/admin/", "/healthz/", "/admin/api/stats/"])
def test_no_redirect_is_built_from_the_host_header(harness: Harness, path: str) -> None:
    response = harness.client.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code in (307, 308)
    location = response.headers["location"]
    assert "evil.example" not in location
    assert location == path.rstrip("/"), "relative, and never //host"


@pytest.mark.parametrize(
    "host", ["evil.example/x", "evil.example:notaport", "a b", "@evil.example"]
)
def test_a_malformed_host_header_gets_a_relative_redirect_too(harness: Harness, host: str) -> None:
    """Starlette falls back to the server's own address when Host will not parse: the
    redirect must not name that address (nor the Host) either."""
    response = harness.client.get("/admin/", headers={"Host": host}, follow_redirects=False)
    assert response.status_code in (307, 308)
    assert response.headers["location"] == "/admin"


def test_deeply_nested_json_on_subscribe_is_a_4xx(harness: Harness) -> None:
    for depth in (50, 5000, 100_000):
        body = '{"phone":' + "[" * depth + "]" * depth + ',"consent":true}'
        response = harness.client.post(
            "/subscribe", content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, depth


@pytest.mark.parametrize(
    "body",
    [
        '{"phone": 12125550142, "consent": true}',
        '{"email": ["sam@example.com"], "consent": true}',
        '{"email": "sam@example.com", "consent": "maybe"}',
        '{"email": "sam@example.com", "consent": true, "timezone": {"a": 1}}',
        "[1, 2, 3]",
        "null",
        '"text"',
        "{not json",
        '{"email": "\\u0000@example.com", "consent": true}',
        '{"timezone": "\\u0000", "email": "sam@example.com", "consent": true}',
    ],
)
def test_malformed_signup_bodies_are_422(harness: Harness, body: str) -> None:
    response = harness.client.post(
        "/subscribe", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]


def test_oversized_and_unknown_bodies_are_refused(harness: Harness) -> None:
    big = json.dumps({"email": "sam@example.com", "consent": True, "pad": "x" * 100_000})
    too_big = harness.client.post(
        "/subscribe", content=big, headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413
    xml = harness.client.post(
        "/subscribe", content="<signup/>", headers={"Content-Type": "application/xml"}
    )
    assert xml.status_code == 415


@pytest.mark.parametrize("bad_id", [str(2**64), "9" * 30, "1e3", "-1", "abc", "١٢٣", "²"])
def test_admin_ids_beyond_64_bits_or_not_digits_are_4xx(harness: Harness, bad_id: str) -> None:
    for path in (
        f"/admin/api/subscribers/{bad_id}",
        f"/admin/api/subscribers/{bad_id}/messages",
        f"/admin/api/subscribers?after={bad_id}",
    ):
        response = harness.client.get(path, headers=BEARER)
        assert 400 <= response.status_code < 500, path


def sendgrid_event(**fields: Any) -> list[dict[str, Any]]:
    return [{"event": "delivered", "email": "sam@example.com", "sg_event_id": "e1", **fields}]


@pytest.mark.parametrize("message_id", ["9" * 30, "١٢٣", "²", "12", 10**30, -5])
def test_sendgrid_events_with_odd_message_ids_are_harmless(
    harness: Harness, message_id: Any
) -> None:
    events = sendgrid_event(steady_message_id=message_id, sg_message_id="9" * 30 + ".filter")
    response = harness.client.post("/webhooks/sendgrid/events", json=events)
    assert response.status_code == 200


@pytest.mark.parametrize("our_id", ["9" * 30, "²", "١٢٣"])
def test_twilio_status_with_an_odd_message_id_is_harmless(harness: Harness, our_id: str) -> None:
    from twilio.request_validator import RequestValidator

    path = f"/webhooks/twilio/status?m={quote(our_id)}"
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    url = PUBLIC_URL + "/webhooks/twilio/status?" + path.split("?", 1)[1]
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(url, form)
    response = harness.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    with harness.runtime.sessions() as session:
        assert session.scalar(select(Message.status).where(Message.kind == "confirm")) == "sent"


def test_openapi_describes_the_json_routes_only(harness: Harness) -> None:
    schema = harness.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/subscribe", "/admin/api/stats", "/admin/api/subscribers/{subscriber_id}"} <= paths
    for hidden in ("/", "/confirm/{token}", "/u/{token}", "/preferences/{token}", "/admin"):
        assert hidden not in paths
    assert not [path for path in paths if path.startswith("/webhooks")]
    body = schema["paths"]["/subscribe"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["consent"]["type"] == "boolean"
    assert "bearer" in json.dumps(schema["components"]["securitySchemes"]).lower()


# Unsigned event posts are accepted while SENDGRID_WEBHOOK_PUBLIC_KEY is unset
# (INTERFACE.md §1): their bodies are anyone's, and every event is stored whole.
ODD_EVENT_BODIES = {
    "nested array": "[" * 100_000,
    "deep value": (
        '[{"event": "delivered", "email": "sam@example.com", "sg_event_id": "deep", "x": '
        + "[" * 990
        + "]" * 990
        + "}]"
    ),
    "NaN": '[{"event": "delivered", "email": "sam@example.com", "sg_event_id": "n", "x": NaN}]',
    "Infinity": (
        '[{"event": "delivered", "email": "sam@example.com", "sg_event_id": "i", "x": -Infinity}]'
    ),
    "1e400": '[{"event": "delivered", "email": "sam@example.com", "sg_event_id": "f", "x": 1e400}]',
}


@pytest.mark.parametrize("name", ODD_EVENT_BODIES)
def test_sendgrid_bodies_a_database_cannot_store_are_refused(database_url: str, name: str) -> None:
    """Found by audit11: a 500 on both databases for deep nesting, on PostgreSQL for
    NaN and out-of-range numbers (its `json` type refuses them)."""
    harness = Harness(make_settings(database_url))
    response = harness.client.post(
        "/webhooks/sendgrid/events",
        content=ODD_EVENT_BODIES[name],
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


def test_sendgrid_events_with_nested_fields_are_still_taken(harness: Harness) -> None:
    events = sendgrid_event(category=["a", "b"], pool={"name": "p", "id": 1}, sg_event_id="ok")
    response = harness.client.post("/webhooks/sendgrid/events", json=events)
    assert response.status_code == 200
