"""Operator review (INTERFACE.md §2): the list, one written reply, clearing a flag."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from service.addresses import mask
from service.storage.models import Channel, InboundMessage, Message, Subscriber
from tests.support.world import Harness
from tests.web.admin_harness import (
    ADMIN_TOKEN,
    BEARER,
    NOON_NEW_YORK,
    PHONE,
    admin_harness,
    confirmed_by_sms,
    https_client,
)

OTHER = "+12125550143"
NEW_YORK = ZoneInfo("America/New_York")


def flagged_person(harness: Harness, text: str = "I want to kill myself") -> int:
    subscriber_id = confirmed_by_sms(harness)
    harness.text_in(PHONE, text)
    return subscriber_id


def review(harness: Harness) -> list[dict[str, object]]:
    response = harness.client.get("/admin/api/review", headers=BEARER)
    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list)
    return items


def messages(harness: Harness, subscriber_id: int) -> list[Message]:
    with harness.runtime.sessions() as session:
        found = list(
            session.scalars(
                select(Message).where(Message.subscriber_id == subscriber_id).order_by(Message.id)
            )
        )
        session.expunge_all()
        return found


def person(harness: Harness, subscriber_id: int) -> Subscriber:
    with harness.runtime.sessions() as session:
        found = session.get(Subscriber, subscriber_id)
        assert found is not None
        session.expunge(found)
        return found


def reply(harness: Harness, subscriber_id: int, body: str) -> object:
    return harness.client.post(
        f"/admin/api/subscribers/{subscriber_id}/reply", json={"body": body}, headers=BEARER
    )


# --- the list ------------------------------------------------------------------------------


def test_review_lists_a_crisis_flag_with_its_text_and_the_masked_thread(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness)
    [item] = review(harness)
    assert item["subscriber_id"] == subscriber_id
    assert item["reason"] == "crisis"
    assert item["body"] == "I want to kill myself"
    assert str(item["received_at"]).startswith("2026-03-02T17:00")
    thread = item["thread"]
    assert isinstance(thread, list)
    directions = [entry["direction"] for entry in thread]
    assert directions.count("in") == 2, "YES and the crisis text"
    assert thread[-1]["kind"] == "reply", "Steady's crisis reply closes the thread"
    assert "automated reply" in thread[-1]["body"]
    page = str(harness.client.get("/admin/api/review", headers=BEARER).text)
    assert "2125550142" not in page, "addresses are masked"
    assert item["channels"] == [{"kind": "sms", "address": mask(PHONE), "status": "active"}]
    assert item["country"] == "US", "whose safety lines they got"


def test_review_lists_texts_steady_did_not_understand(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    harness.text_in(PHONE, "the kids have a school play on friday")
    [item] = review(harness)
    assert (item["subscriber_id"], item["reason"]) == (subscriber_id, "unrecognised")
    assert item["body"] == "the kids have a school play on friday"
    assert person(harness, subscriber_id).flagged_at is None, "listed, not flagged"


def test_review_leaves_out_flags_for_other_reasons_and_understood_texts(
    database_url: str,
) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    harness.text_in(PHONE, "ME")
    with harness.runtime.sessions.begin() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber_id)
            .values(flagged_at=NOON_NEW_YORK, flag_reason="carrier_filtering_30007")
        )
    assert review(harness) == []


@pytest.mark.parametrize("path", ["/admin/api/review", "/admin/review"])
def test_review_needs_the_admin(database_url: str, path: str) -> None:
    harness = admin_harness(database_url)
    api = path.startswith("/admin/api")
    response = harness.client.get(path, follow_redirects=False)
    assert response.status_code == (401 if api else 303)
    if not api:
        assert response.headers["location"] == "/admin", "to the sign-in page"
    off = admin_harness(database_url, STEADY_ADMIN_TOKEN="")
    assert off.client.get(path, headers=BEARER).status_code == 404


# --- an operator's reply ----------------------------------------------------------------------


def test_reply_to_someone_who_texted_today_goes_at_once_as_an_operator_sms(
    database_url: str,
) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness)
    harness.now = NOON_NEW_YORK + timedelta(hours=1)
    response = reply(harness, subscriber_id, "  I'm one of the people who run Steady.  ")
    assert response.status_code == 202
    body = response.json()
    assert body["at_once"] is True
    [queued] = [m for m in messages(harness, subscriber_id) if m.kind == "operator"]
    assert (queued.priority, queued.rule, queued.status) == (0, "operator_reply", "scheduled")
    assert queued.scheduled_for == harness.now
    assert queued.body == "Steady: I'm one of the people who run Steady."

    harness.tick(harness.now)
    sent = [m for m in harness.sms.sent if m.message_id == queued.id]
    assert [m.body for m in sent] == ["Steady: I'm one of the people who run Steady."]
    assert person(harness, subscriber_id).flagged_at is not None, "a reply keeps the flag"


def test_reply_to_someone_quiet_for_a_day_waits_for_their_window_to_open(
    database_url: str,
) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    harness.text_in(PHONE, "hmm whatever")
    late = (NOON_NEW_YORK + timedelta(days=1)).astimezone(NEW_YORK).replace(hour=22)
    harness.now = late
    response = reply(harness, subscriber_id, "Checking in on your message from yesterday.")
    assert response.status_code == 202
    assert response.json()["at_once"] is False
    [queued] = [m for m in messages(harness, subscriber_id) if m.kind == "operator"]
    opening = late.replace(hour=8) + timedelta(days=1)
    assert queued.scheduled_for == opening
    harness.tick(late + timedelta(hours=1))
    assert all(m.message_id != queued.id for m in harness.sms.sent), "not at night"
    harness.tick(opening)
    assert any(m.message_id == queued.id for m in harness.sms.sent)


def test_an_operator_reply_is_never_counted_as_a_nudge(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    harness.text_in(PHONE, "hmm")
    for text in ("One.", "Two.", "Three."):
        assert reply(harness, subscriber_id, text).status_code == 202
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))
    kinds = [m.kind for m in messages(harness, subscriber_id) if m.status != "cancelled"]
    assert kinds.count("operator") == 3
    assert "welcome" in kinds, "the planner still plans: three operator texts use no cap"
    assert harness.client.get("/admin/api/stats", headers=BEARER).status_code == 200
    why = harness.text_in(PHONE, "WHY").text
    assert "Three" not in why


@pytest.mark.parametrize(
    ("setup", "body", "status"),
    [
        ("stopped", "Hello.", 422),
        ("email_only", "Hello.", 422),
        ("active", "   ", 422),
        ("active", "x" * 500, 422),
        ("active", "x" * 1001, 422),
        ("missing", "Hello.", 404),
    ],
)
def test_a_reply_that_cannot_go_is_refused(
    database_url: str, setup: str, body: str, status: int
) -> None:
    harness = admin_harness(database_url)
    subscriber_id = confirmed_by_sms(harness)
    if setup == "stopped":
        harness.text_in(PHONE, "STOP")
    elif setup == "email_only":
        harness.client.post("/subscribe", json={"email": "sam@example.com", "consent": True})
        with harness.runtime.sessions() as session:
            email = session.scalar(select(Channel).where(Channel.kind == "email"))
            assert email is not None
            subscriber_id = email.subscriber_id
    elif setup == "missing":
        subscriber_id = 999_999
    before = len(messages(harness, subscriber_id))
    response = reply(harness, subscriber_id, body)
    assert response.status_code == status, response.text
    assert len(messages(harness, subscriber_id)) == before
    malformed = harness.client.post(
        f"/admin/api/subscribers/{subscriber_id}/reply", json={"text": "x"}, headers=BEARER
    )
    assert malformed.status_code == 422


# --- clearing -------------------------------------------------------------------------------


def test_clearing_a_flag_takes_it_off_the_list_and_plans_nudges_again(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness)
    harness.tick(NOON_NEW_YORK + timedelta(minutes=1))
    assert not [m for m in messages(harness, subscriber_id) if m.kind == "welcome"]

    harness.now = NOON_NEW_YORK + timedelta(hours=2)
    response = harness.client.post(
        f"/admin/api/subscribers/{subscriber_id}/clear-flag", headers=BEARER
    )
    assert response.status_code == 200
    cleared = person(harness, subscriber_id)
    assert (cleared.flagged_at, cleared.flag_reason) == (None, None)
    assert cleared.next_plan_at == harness.now
    assert review(harness) == []
    with harness.runtime.sessions() as session:
        crisis = session.scalar(select(InboundMessage).where(InboundMessage.command == "crisis"))
        assert crisis is not None
        assert crisis.reviewed_at == harness.now
    harness.tick(harness.now)
    assert [m for m in messages(harness, subscriber_id) if m.kind == "welcome"], "replanned"


def test_clearing_an_unknown_subscriber_is_404(database_url: str) -> None:
    harness = admin_harness(database_url)
    assert (
        harness.client.post("/admin/api/subscribers/424242/clear-flag", headers=BEARER).status_code
        == 404
    )


# --- the page and its forms -----------------------------------------------------------------


def test_the_page_shows_the_text_and_its_forms_send_and_clear_with_the_session(
    database_url: str,
) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness, "he hit me again tonight")
    client = https_client(harness)
    client.post("/admin/login", data={"token": ADMIN_TOKEN})

    page = client.get("/admin/review")
    assert page.status_code == 200
    assert "he hit me again tonight" in page.text
    assert "2125550142" not in page.text
    assert "<script" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert f'action="/admin/review/{subscriber_id}/reply"' in page.text

    sent = client.post(
        f"/admin/review/{subscriber_id}/reply",
        data={"body": "We saw your message. The lines above are open now."},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == "/admin/review?done=replied"
    assert "Reply queued" in client.get(sent.headers["location"]).text
    assert [m.kind for m in messages(harness, subscriber_id)].count("operator") == 1

    cleared = client.post(f"/admin/review/{subscriber_id}/clear-flag", follow_redirects=False)
    assert cleared.status_code == 303
    assert person(harness, subscriber_id).flagged_at is None
    assert "Nothing to review" in client.get("/admin/review").text


def test_a_refused_form_reply_comes_back_to_the_page_saying_why(database_url: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness, "stop texting me, I want to die")
    response = harness.client.post(
        f"/admin/review/{subscriber_id}/reply", data={"body": "Hello"}, headers=BEARER
    )
    assert response.status_code == 422
    assert "Not sent: their SMS channel is stopped" in response.text


@pytest.mark.parametrize("action", ["reply", "clear-flag"])
def test_cross_site_posts_are_refused(database_url: str, action: str) -> None:
    harness = admin_harness(database_url)
    subscriber_id = flagged_person(harness)
    client = https_client(harness)
    client.post("/admin/login", data={"token": ADMIN_TOKEN})
    evil = {"Origin": "https://evil.example"}
    form = client.post(f"/admin/review/{subscriber_id}/{action}", data={"body": "x"}, headers=evil)
    api = client.post(
        f"/admin/api/subscribers/{subscriber_id}/{action}", json={"body": "x"}, headers=evil
    )
    assert (form.status_code, api.status_code) == (403, 403)
    assert person(harness, subscriber_id).flagged_at is not None
    assert "operator" not in [m.kind for m in messages(harness, subscriber_id)]
    assert OTHER not in form.text
