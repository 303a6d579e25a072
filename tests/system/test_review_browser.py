"""Operator review in a real browser (headless Chromium): an operator signs in, finds a
flagged person on /admin/review, writes them one reply and clears the flag.

The page has no script (the admin CSP allows none): both actions are plain form
posts carrying the session cookie, and the page says what happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select

from service.storage.models import Channel, Message, Subscriber
from tests.support.browser import (
    DESKTOP_VIEWPORT,
    NOON_NEW_YORK,
    PHONE_VIEWPORT,
    LiveServer,
    assert_every_field_is_labelled,
    assert_no_horizontal_scroll,
    live_server,
    screenshot,
)
from tests.system.test_browser import ADMIN_TOKEN, PHONE, browser, shown, twilio_post

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with test_browser

CRISIS_TEXT = "I can't do this anymore, I want to end my life"
OPERATOR_REPLY = (
    "This is Sam, one of the people running Steady. The lines in our last text are open now."
)


@pytest.fixture
def flagged_server(sqlite_url: str) -> Iterator[LiveServer]:
    """A person who joined by text, confirmed, and then wrote words of crisis."""
    with live_server(sqlite_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN) as server:
        httpx.post(server.url + "/subscribe", json={"phone": PHONE, "consent": True})
        server.tick()
        for number, body in enumerate(("YES", CRISIS_TEXT), start=1):
            form = {
                "From": PHONE,
                "To": "+15005550006",
                "Body": body,
                "MessageSid": f"SM{number:032d}",
            }
            twilio_post(server, "/webhooks/twilio/inbound", form)
        yield server


def flagged(server: LiveServer) -> Subscriber:
    with server.runtime.sessions() as session:
        found = session.scalar(select(Subscriber).join(Channel).where(Channel.address == PHONE))
        assert found is not None
        return found


def test_operator_signs_in_replies_to_a_flagged_person_and_clears_the_flag(
    flagged_server: LiveServer, browser: Browser
) -> None:
    server = flagged_server
    person = flagged(server)
    assert person.flagged_at is not None

    context = browser.new_context(viewport=DESKTOP_VIEWPORT)
    page = context.new_page()
    page.goto(server.url + "/admin/review")
    token = shown(page.get_by_label("Admin token"))  # not signed in: the sign-in page
    token.fill(ADMIN_TOKEN)
    with page.expect_response(lambda r: r.url.endswith("/admin/login")):
        page.keyboard.press("Enter")
    shown(page.get_by_role("list", name="Headline figures"))
    page.get_by_role("link", name="Review and reply").click()

    card = shown(page.get_by_role("region", name=f"Subscriber {person.id}"))
    assert CRISIS_TEXT in card.inner_text()
    assert "crisis" in card.inner_text()
    assert "2125550142" not in page.content(), "the address is masked"
    assert_every_field_is_labelled(page)
    screenshot(page, "admin-review")

    box = card.get_by_label(f"Reply to subscriber {person.id} by SMS")
    box.fill(OPERATOR_REPLY)
    card.get_by_role("button", name="Send reply").click()
    shown(page.get_by_role("status").filter(has_text="Reply queued"))
    with server.runtime.sessions() as session:
        [queued] = session.scalars(select(Message).where(Message.kind == "operator")).all()
        assert queued.body == f"Steady: {OPERATOR_REPLY}"
    server.tick(NOON_NEW_YORK + timedelta(minutes=5))
    assert [m.body for m in server.sms.sent if m.message_id == queued.id] == [queued.body]

    card = page.get_by_role("region", name=f"Subscriber {person.id}")
    card.get_by_role("button", name="Clear flag").click()
    shown(page.get_by_role("status").filter(has_text="Flag cleared"))
    assert page.get_by_text("Nothing to review").is_visible()
    assert flagged(server).flagged_at is None
    screenshot(page, "admin-review-cleared")

    page.set_viewport_size(PHONE_VIEWPORT)
    assert_no_horizontal_scroll(page)
    context.close()
