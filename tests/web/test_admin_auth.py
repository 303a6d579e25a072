"""Admin access under attack (issue 11): guessing is limited per client and logged,
and sessions end server-side on logout and on a new token."""

from __future__ import annotations

from fastapi.testclient import TestClient
from structlog.testing import capture_logs
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from service.web.admin_auth import SESSION_COOKIE
from tests.support.world import Harness, make_settings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token-but-a-guess"}


def admin(database_url: str, **overrides: str) -> Harness:
    return Harness(make_settings(database_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN, **overrides))


def https(harness: Harness) -> TestClient:
    return TestClient(harness.client.app, base_url="https://testserver")


def test_five_wrong_bearer_tokens_lock_the_client_out(database_url: str) -> None:
    harness = admin(database_url)
    with capture_logs() as logs:
        codes = [
            harness.client.get("/admin/api/stats", headers=WRONG).status_code for _ in range(5)
        ]
        locked = harness.client.get("/admin/api/stats", headers=BEARER)
    assert codes == [401] * 5
    assert locked.status_code == 429, "locked out: even the right token waits"
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    failures = [line for line in logs if line["event"] == "admin_auth_failed"]
    assert len(failures) == 5
    assert all(line["client"] == "testclient" for line in failures)
    assert all(line["log_level"] == "warning" for line in failures)
    assert not [line for line in logs if "not-the-token" in repr(line)], "never what was tried"
    assert ADMIN_TOKEN not in repr(logs)


def test_guesses_from_one_ipv6_64_share_one_lockout(database_url: str) -> None:
    """Found by audit11: each address of a /64 had a lockout of its own."""
    harness = admin(database_url)
    proxied = TestClient(ProxyHeadersMiddleware(harness.client.app, trusted_hosts="testclient"))

    def from_client(address: str, headers: dict[str, str]) -> int:
        headers = {**headers, "X-Forwarded-For": address}
        return int(proxied.get("/admin/api/stats", headers=headers).status_code)

    codes = [from_client(f"2001:db8:5:6::{n:x}", WRONG) for n in range(1, 6)]
    assert codes == [401] * 5
    assert from_client("2001:db8:5:6:ffff::1", BEARER) == 429, "the same /64 is locked out"
    assert from_client("2001:db8:5:7::1", BEARER) == 200, "another /64 is not"


def test_wrong_logins_lock_out_the_login_form_too(database_url: str) -> None:
    harness = admin(database_url)
    client = https(harness)
    codes = [
        client.post("/admin/login", data={"token": f"guess-{n}"}).status_code for n in range(5)
    ]
    assert codes == [401] * 5
    locked = client.post("/admin/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers
    assert SESSION_COOKIE not in locked.headers.get("set-cookie", "")
    assert harness.client.get("/admin/api/stats", headers=WRONG).status_code == 429


def test_a_right_token_is_not_counted_as_a_failure(database_url: str) -> None:
    harness = admin(database_url)
    for _ in range(10):
        assert harness.client.get("/admin/api/stats", headers=BEARER).status_code == 200


def test_logout_ends_the_session_for_every_copy_of_the_cookie(database_url: str) -> None:
    harness = admin(database_url)
    client = https(harness)
    client.post("/admin/login", data={"token": ADMIN_TOKEN})
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    copied = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    assert https(harness).get("/admin/api/stats", headers=copied).status_code == 200

    assert client.post("/admin/logout", follow_redirects=False).status_code == 303
    assert https(harness).get("/admin/api/stats", headers=copied).status_code == 401
    assert 'name="token"' in https(harness).get("/admin", headers=copied).text


def test_a_new_token_ends_the_sessions_opened_with_the_old_one(database_url: str) -> None:
    harness = admin(database_url)
    client = https(harness)
    client.post("/admin/login", data={"token": ADMIN_TOKEN})
    copied = {"Cookie": f"{SESSION_COOKIE}={client.cookies.get(SESSION_COOKIE)}"}
    rotated = Harness(
        make_settings(database_url, STEADY_ADMIN_TOKEN="a-new-admin-token-9876543210")
    )
    assert https(rotated).get("/admin/api/stats", headers=copied).status_code == 401
