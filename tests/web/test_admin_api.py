"""The admin JSON API and `steady stats --json`: hidden without a token, bearer-only, masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.storage.models import Subscriber
from tests.support.world import Harness, make_settings
from tests.web.admin_harness import (
    ADMIN_TOKEN,
    BEARER,
    EMAIL,
    NOON_NEW_YORK,
    OTHER_PHONE,
    PHONE,
    admin_harness,
    busy_day,
    confirmed_by_sms,
)

THIRD_PHONE = "+12125550144"


API_PATHS = (
    "/admin/api/stats",
    "/admin/api/subscribers",
    "/admin/api/subscribers/1",
    "/admin/api/subscribers/1/messages",
    "/admin/api/flagged",
)


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
