"""The admin dashboard: token login, a strict session cookie, and the sessions it refuses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from service.storage.models import Message
from service.web.admin_auth import SESSION_COOKIE, SESSION_SALT, token_fingerprint
from tests.web.admin_harness import (
    ADMIN_TOKEN,
    BEARER,
    EMAIL,
    NOON_NEW_YORK,
    admin_harness,
    busy_day,
    https_client,
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
