"""The operator's view: the admin API, the dashboard and its session, and `steady stats`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.storage.models import Message, Subscriber
from service.web.admin_auth import SESSION_COOKIE, SESSION_SALT, token_fingerprint
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, make_settings

NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PHONE = "+12125550142"
OTHER_PHONE = "+12125550143"
THIRD_PHONE = "+12125550144"
EMAIL = "sam@example.com"
API_PATHS = (
    "/admin/api/stats",
    "/admin/api/subscribers",
    "/admin/api/subscribers/1",
    "/admin/api/subscribers/1/messages",
    "/admin/api/flagged",
)


def admin_harness(database_url: str, **overrides: str) -> Harness:
    settings = make_settings(database_url, **{"STEADY_ADMIN_TOKEN": ADMIN_TOKEN, **overrides})
    return Harness(settings, now=NOON_NEW_YORK)


def https_client(harness: Harness) -> TestClient:
    """A client on https, so the Secure session cookie is stored and sent back."""
    return TestClient(harness.client.app, base_url="https://testserver")


def confirmed_by_sms(harness: Harness, phone: str = PHONE) -> int:
    """Sign up through the API, confirm with YES; returns the subscriber id."""
    harness.client.post("/subscribe", json={"phone": phone, "consent": True})
    harness.tick()
    harness.text_in(phone, "YES")
    [row] = [
        s
        for s in harness.client.get("/admin/api/subscribers", headers=BEARER).json()["subscribers"]
        if s["channels"][0]["address"].endswith(phone[-2:]) and s["status"] == "active"
    ]
    return int(row["id"])


def deliver(harness: Harness, message_id: int) -> None:
    """A signed Twilio status callback saying the message was delivered."""
    path = f"/webhooks/twilio/status?m={message_id}"
    form = {"MessageSid": f"outbox-{message_id}", "MessageStatus": "delivered"}
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, form)
    response = harness.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def busy_day(harness: Harness) -> int:
    """A confirmed SMS subscriber who got a welcome (delivered) and logged a contact,
    a pending email subscriber, and a second number that said STOP. Returns the first id."""
    subscriber_id = confirmed_by_sms(harness)
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))  # the welcome nudge
    for message in harness.sms.sent:
        deliver(harness, message.message_id)
    harness.text_in(PHONE, "ME")
    harness.client.post("/subscribe", json={"email": EMAIL, "consent": True})
    harness.client.post("/subscribe", json={"phone": OTHER_PHONE, "consent": True})
    harness.tick()
    harness.text_in(OTHER_PHONE, "YES")
    harness.text_in(OTHER_PHONE, "STOP")
    return subscriber_id


# --- disabled and unauthorised ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin", *API_PATHS])
def test_admin_is_404_when_no_token_is_set(database_url: str, path: str) -> None:
    harness = Harness(make_settings(database_url))
    assert harness.client.get(path).status_code == 404
    assert harness.client.get(path, headers={"Authorization": "Bearer anything"}).status_code == 404


def test_login_is_404_when_no_token_is_set(database_url: str) -> None:
    harness = Harness(make_settings(database_url))
    assert harness.client.post("/admin/login", data={"token": "x"}).status_code == 404


@pytest.mark.parametrize("path", API_PATHS)
def test_api_is_401_without_the_token_or_with_a_wrong_one(database_url: str, path: str) -> None:
    harness = admin_harness(database_url)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ):
        response = harness.client.get(path, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")


# --- the API ---------------------------------------------------------------------------


def test_stats_counts_what_happened(database_url: str) -> None:
    harness = admin_harness(database_url)
    busy_day(harness)

    response = harness.client.get("/admin/api/stats", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    figures = response.json()
    assert figures["subscribers"] | {"total": 0} == {
        "active": 1,
        "pending": 1,
        "stopped": 1,
        "suppressed": 0,
        "flagged": 0,
        "total": 0,
    }
    assert figures["subscribers"]["total"] == 3
    assert figures["channels"]["sms"]["stopped"] == 1
    assert figures["messages"]["delivered"] == 2  # confirm and welcome
    assert figures["delivery_events"] == {"delivered": 2}
    assert figures["opt_outs"] == 1
    assert figures["opt_outs_by_reason"] == {"stop": 1}
    assert figures["suppressions"] == 1


def test_flagged_is_an_array_of_subscribers_with_ids(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    confirmed_by_sms(harness, OTHER_PHONE)
    assert harness.client.get("/admin/api/flagged", headers=BEARER).json() == []

    harness.text_in(PHONE, "I called him and now I want to kill myself")

    flagged = harness.client.get("/admin/api/flagged", headers=BEARER).json()
    assert isinstance(flagged, list)
    assert [subscriber["id"] for subscriber in flagged] == [subscriber_id]
    assert flagged[0]["flagged"] is True
    assert flagged[0]["flag_reason"] == "crisis_words"
    stats = harness.client.get("/admin/api/stats", headers=BEARER).json()
    assert stats["subscribers"]["flagged"] == 1


def test_flagged_lists_a_subscriber_flagged_directly_in_the_model(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    with harness.runtime.sessions.begin() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id)
            .values(flagged_at=NOON_NEW_YORK, flag_reason="operator_test")
        )
    flagged = harness.client.get("/admin/api/flagged", headers=BEARER).json()
    assert [(s["id"], s["flag_reason"]) for s in flagged] == [(subscriber_id, "operator_test")]


def test_addresses_are_masked_in_admin_json(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = busy_day(harness)

    for path in (
        "/admin/api/subscribers",
        f"/admin/api/subscribers/{subscriber_id}",
        f"/admin/api/subscribers/{subscriber_id}/messages",
        "/admin/api/flagged",
    ):
        text = harness.client.get(path, headers=BEARER).text
        for personal in ("2125550142", "2125550143", EMAIL):
            assert personal not in text, path
    listed = harness.client.get("/admin/api/subscribers", headers=BEARER).json()["subscribers"]
    addresses = [channel["address"] for s in listed for channel in s["channels"]]
    assert "s•••@example.com" in addresses


def test_subscribers_filter_by_status_and_page_by_id(database_url: str) -> None:
    harness = admin_harness(database_url)
    active_id = confirmed_by_sms(harness)
    for phone in (OTHER_PHONE, THIRD_PHONE):
        harness.client.post("/subscribe", json={"phone": phone, "consent": True})

    def ids(query: str) -> list[int]:
        body = harness.client.get(f"/admin/api/subscribers{query}", headers=BEARER).json()
        return [s["id"] for s in body["subscribers"]]

    assert ids("?status=active") == [active_id]
    pending = ids("?status=pending")
    assert len(pending) == 2
    assert active_id not in pending
    assert ids("?status=stopped") == []

    first = harness.client.get("/admin/api/subscribers?limit=2", headers=BEARER).json()
    assert len(first["subscribers"]) == 2
    rest = ids(f"?limit=2&after={first['next_after']}")
    assert len(rest) == 1
    assert rest[0] > first["next_after"]
    response = harness.client.get("/admin/api/subscribers?status=happy", headers=BEARER)
    assert response.status_code == 422


def test_subscriber_detail_has_logs_and_messages(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = busy_day(harness)
    harness.text_in(PHONE, "DONE gym")

    detail = harness.client.get(f"/admin/api/subscribers/{subscriber_id}", headers=BEARER).json()
    assert detail["id"] == subscriber_id
    assert detail["timezone"] == "America/New_York"
    assert detail["cadence"]["per_week"] == 7
    assert [c["kind"] for c in detail["channels"]] == ["sms"]
    assert detail["contact_logs"]["count"] == 1
    assert detail["contact_logs"]["recent"][0]["initiator"] == "me"
    assert detail["contact_logs"]["recent"][0]["occurred_at"]
    assert detail["activity_logs"]["count"] == 1
    assert "note" not in detail["activity_logs"]["recent"][0], "no free text for operators"

    body = harness.client.get(
        f"/admin/api/subscribers/{subscriber_id}/messages", headers=BEARER
    ).json()
    messages = body["messages"]
    assert messages[0]["kind"] == "confirm"
    assert messages[0]["status"] == "delivered"
    assert set(messages[0]) == {
        "id",
        "channel",
        "kind",
        "template",
        "rule",
        "status",
        "scheduled_for",
        "sent_at",
        "error_code",
    }
    assert any(m["kind"] == "restraint" for m in messages), "the ME reply is logged"


def test_unknown_subscriber_is_404(database_url: str) -> None:
    harness = admin_harness(database_url)
    assert harness.client.get("/admin/api/subscribers/999", headers=BEARER).status_code == 404
    assert (
        harness.client.get("/admin/api/subscribers/999/messages", headers=BEARER).status_code == 404
    )


# --- the dashboard ---------------------------------------------------------------------


def set_cookie_attributes(response: Any) -> dict[str, str]:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    attributes: dict[str, str] = {}
    for part in header.split(";")[1:]:
        key, _, raw = part.strip().partition("=")
        attributes[key.lower()] = raw
    return attributes


def test_dashboard_asks_for_the_token_then_keeps_a_strict_session(database_url: str) -> None:
    harness = admin_harness(database_url)
    busy_day(harness)
    client = https_client(harness)

    page = client.get("/admin")
    assert page.status_code == 200
    assert 'name="token"' in page.text
    assert "<svg" not in page.text

    wrong = client.post("/admin/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")

    login = client.post("/admin/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    assert login.headers["location"] == "/admin"
    attributes = set_cookie_attributes(login)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert "secure" in attributes, "STEADY_PUBLIC_URL is https"
    assert attributes["path"] == "/admin"
    assert int(attributes["max-age"]) == 12 * 3600

    dashboard = client.get("/admin")
    assert dashboard.status_code == 200
    assert dashboard.headers["x-frame-options"] == "DENY"
    html = dashboard.text
    assert html.count("<svg") == 5
    assert 'role="img"' in html
    assert "Sends per hour by channel, last 48 hours" in html
    with harness.runtime.sessions() as session:
        sms_sent = session.scalar(
            select(func.count()).where(Message.channel == "sms", Message.sent_at.is_not(None))
        )
    assert sms_sent >= 3, "confirmations, welcome and TwiML replies"
    assert f"17h: sms {sms_sent}</title>" in html, "everything went out at 17:00 UTC"
    assert "Delivered: 2</title>" in html
    assert "opt-outs 1</title>" in html
    for personal in ("2125550142", "2125550143", EMAIL):
        assert personal not in html

    assert client.get("/admin/api/stats").status_code == 200, "the session opens the API too"

    logout = client.post("/admin/logout", follow_redirects=False)
    assert logout.status_code == 303
    assert 'name="token"' in client.get("/admin").text


def test_cookie_is_not_secure_on_plain_http(database_url: str) -> None:
    harness = admin_harness(database_url, STEADY_PUBLIC_URL="http://127.0.0.1:8000")
    login = harness.client.post("/admin/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert "secure" not in set_cookie_attributes(login)
    assert "<svg" in harness.client.get("/admin").text


def test_a_forged_or_stale_session_cookie_is_refused(database_url: str) -> None:
    harness = admin_harness(database_url)
    client = https_client(harness)

    def with_cookie(value: str) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={value}"}

    forged = with_cookie("forged.value.here")
    assert 'name="token"' in https_client(harness).get("/admin", headers=forged).text
    assert https_client(harness).get("/admin/api/stats", headers=forged).status_code == 401

    client.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    same = https_client(harness).get("/admin/api/stats", headers=with_cookie(cookie))
    assert same.status_code == 200, "the cookie alone is the session"

    rotated = admin_harness(database_url, STEADY_ADMIN_TOKEN="a-new-admin-token-9876543210")
    response = https_client(rotated).get("/admin/api/stats", headers=with_cookie(cookie))
    assert response.status_code == 401, "a new token ends old sessions"


def test_a_cross_site_login_post_is_refused(database_url: str) -> None:
    harness = admin_harness(database_url)
    response = https_client(harness).post(
        "/admin/login",
        data={"token": ADMIN_TOKEN},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_bearer_header_opens_the_dashboard(database_url: str) -> None:
    harness = admin_harness(database_url)
    response = harness.client.get("/admin", headers=BEARER)
    assert response.status_code == 200
    assert "<svg" in response.text


# --- steady stats ----------------------------------------------------------------------


def test_steady_stats_json_prints_the_figures(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    harness = admin_harness(database_url)
    busy_day(harness)
    with harness.runtime.sessions.begin() as session:
        session.execute(update(Subscriber).values(flagged_at=NOON_NEW_YORK))
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("STEADY_DATABASE_URL", database_url)

    result = CliRunner().invoke(cli, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["subscribers"]["active"] == 1
    assert figures["subscribers"]["stopped"] == 1
    assert figures["subscribers"]["flagged"] == 3
    assert figures["messages"]["delivered"] == 2
    assert figures["delivery_events"] == {"delivered": 2}
    assert figures["opt_outs"] == 1
    assert figures["suppressions"] == 1

    table = CliRunner().invoke(cli, ["stats"])
    assert table.exit_code == 0, table.output
    assert "subscribers.flagged" in table.stdout


def test_a_session_older_than_12_hours_is_refused(database_url: str) -> None:
    harness = admin_harness(database_url)
    client = https_client(harness)
    client.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert client.get("/admin/api/stats").status_code == 200
    harness.now = NOON_NEW_YORK + timedelta(hours=12, minutes=1)
    assert client.get("/admin/api/stats").status_code == 401


def test_a_signed_cookie_without_a_stored_session_is_refused(database_url: str) -> None:
    """The old cookie held the token's fingerprint; a server-side session is needed now."""
    harness = admin_harness(database_url)
    ctx = harness.client.app.state.steady  # type: ignore[attr-defined]
    serializer = URLSafeTimedSerializer(
        ctx.settings.secret_key.get_secret_value(), salt=SESSION_SALT
    )
    cookie = serializer.dumps(token_fingerprint(ctx, ADMIN_TOKEN))
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert https_client(harness).get("/admin/api/stats", headers=headers).status_code == 401
