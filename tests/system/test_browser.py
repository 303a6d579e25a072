"""The subscriber pages and the admin dashboard in a real browser (headless Chromium).

A person signs up on a phone-sized screen using only the keyboard, confirms by the
link in the email Steady sent, changes their preferences and unsubscribes; every
page is labelled, readable (WCAG AA contrast) and fits 390 px without sideways
scrolling. The operator signs in to the dashboard and sees figures and charts.
Screenshots of every step land in `artifacts/browser/` (tests/support/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from service.devtools.servers import wait_until
from service.storage.models import Channel, Subscriber
from tests.support.browser import (
    DESKTOP_VIEWPORT,
    NOON_NEW_YORK,
    PHONE_VIEWPORT,
    REQUIRE_BROWSER,
    WCAG_AA_NORMAL_TEXT,
    LiveServer,
    assert_every_field_is_labelled,
    assert_no_horizontal_scroll,
    browser_missing,
    launched_chromium,
    live_server,
    screenshot,
    text_contrast,
)
from tests.support.world import TEST_TWILIO_TOKEN

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

pytestmark = pytest.mark.browser

EMAIL = "sam@example.com"
PHONE = "+12125550142"
ADMIN_TOKEN = "admin-token-for-browser-tests-0123456789"
NAVIGATION_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module; skipped (or failed under .ci/run) when missing."""
    missing = browser_missing()
    if missing is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"{missing} (STEADY_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(missing)
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def server(sqlite_url: str) -> Iterator[LiveServer]:
    with live_server(sqlite_url) as running:
        yield running


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A fresh phone-sized tab with its own cookies."""
    context: BrowserContext = browser.new_context(
        viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    yield page
    context.close()


def email_channel(server: LiveServer) -> Channel:
    with server.runtime.sessions() as session:
        found = session.scalar(select(Channel).where(Channel.address == EMAIL))
        assert found is not None, "no channel for the address"
        return found


def subscriber(server: LiveServer) -> Subscriber:
    with server.runtime.sessions() as session:
        found = session.scalar(select(Subscriber).join(Channel).where(Channel.address == EMAIL))
        assert found is not None
        return found


def shown(locator: Locator) -> Locator:
    """Wait for the next page to show `locator` (a click's navigation is not awaited)."""
    locator.wait_for(state="visible", timeout=NAVIGATION_MS)
    return locator


def focused_id(page: Page) -> str:
    return str(page.evaluate("() => document.activeElement && document.activeElement.id"))


def check_page(page: Page, name: str) -> None:
    """What every subscriber page must do: fit the phone, label its fields; and a picture."""
    assert_no_horizontal_scroll(page)
    assert_every_field_is_labelled(page)
    screenshot(page, name)


# --- a person's whole journey ----------------------------------------------------------


def test_signup_confirm_preferences_and_unsubscribe_on_a_phone(
    server: LiveServer, phone: Page
) -> None:
    page = phone
    response = page.goto(server.url + "/")
    assert response is not None
    assert response.status == 200
    for label in ("Mobile number", "Email", "Time zone", "I agree to receive"):
        assert page.get_by_label(label).count() == 1, label
    check_page(page, "01-signup")

    # Keyboard only: Tab through the form in order, type, tick with Space, send with Enter.
    page.locator("body").focus()
    page.keyboard.press("Tab")
    assert focused_id(page) == "phone"
    page.keyboard.press("Tab")
    assert focused_id(page) == "email"
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    assert focused_id(page) == "timezone"
    page.keyboard.press("Tab")
    assert focused_id(page) == "consent"
    page.keyboard.press("Space")
    assert page.get_by_label("I agree to receive").is_checked()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.type") == "submit"
    with page.expect_response(lambda r: r.url.endswith("/subscribe")) as sent:
        page.keyboard.press("Enter")
    assert sent.value.status == 202
    shown(page.get_by_role("heading", name="Check your messages"))
    check_page(page, "02-check-your-messages")

    # The confirmation email goes out; its link opens a page that asks before changing anything.
    server.tick()
    [confirmation] = server.emails_to(EMAIL)
    confirm_url = server.link_in(confirmation, "/confirm/")
    response = page.goto(confirm_url)
    assert response is not None
    assert response.status == 200
    assert email_channel(server).status == "pending", "a GET must not confirm"
    check_page(page, "03-confirm")
    page.get_by_role("button", name="Yes, confirm").click()
    shown(page.get_by_text("You're confirmed"))
    assert email_channel(server).status == "active"
    check_page(page, "04-confirmed")

    # The welcome email carries the preferences link in its footer.
    server.tick(NOON_NEW_YORK + timedelta(minutes=1))
    emails = server.emails_to(EMAIL)
    assert len(emails) == 2, "the welcome email went"
    page.goto(server.link_in(emails[-1], "/preferences/"))
    before = subscriber(server)
    assert (before.cadence_per_week, before.discreet) == (7, False)
    check_page(page, "05-preferences")
    page.get_by_label("How often").select_option(label="3 a week")
    discreet = page.get_by_label("Discreet mode")
    discreet.focus()
    page.keyboard.press("Space")
    assert discreet.is_checked()
    with page.expect_response(lambda r: "/preferences/" in r.url and r.request.method == "POST"):
        page.get_by_role("button", name="Save").click()
    shown(page.get_by_role("status").filter(has_text="saved"))
    after = subscriber(server)
    assert (after.cadence_per_week, after.discreet) == (3, True)
    assert page.get_by_label("Discreet mode").is_checked(), "the page shows what was saved"
    check_page(page, "06-preferences-saved")

    # Unsubscribe from the newest email's link: GET asks, the button stops the channel.
    page.goto(server.link_in(server.emails_to(EMAIL)[-1], "/u/"))
    assert email_channel(server).status == "active", "a GET must not unsubscribe"
    check_page(page, "07-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    shown(page.get_by_role("heading", name="You're unsubscribed"))
    stopped = email_channel(server)
    assert (stopped.status, stopped.status_reason) == ("stopped", "unsubscribe_link")
    check_page(page, "08-unsubscribed")


def test_a_bad_email_is_shown_next_to_its_field(server: LiveServer, phone: Page) -> None:
    page = phone
    page.goto(server.url + "/")
    page.get_by_label("Email").fill("sam@")
    page.get_by_label("I agree to receive").check()
    with page.expect_response(lambda r: r.url.endswith("/subscribe")) as sent:
        page.get_by_role("button", name="Sign up").click()
    assert sent.value.status == 422
    alert = shown(page.get_by_role("alert"))
    assert "email" in alert.inner_text().casefold()
    field = page.get_by_label("Email")
    assert field.get_attribute("aria-invalid") == "true"
    # The field points at its own error message, which is shown beside it.
    described = [
        page.locator(f"#{name}") for name in (field.get_attribute("aria-describedby") or "").split()
    ]
    errors = [d for d in described if "field-error" in (d.get_attribute("class") or "")]
    assert len(errors) == 1, "the field is described by exactly one error"
    message = (errors[0].text_content() or "").removeprefix("Error: ").strip()
    assert errors[0].is_visible()
    assert message, "the error says what is wrong"
    assert message.casefold() in alert.inner_text().casefold(), "the summary repeats it"
    assert page.title().startswith("Error: ")
    # The summary links to the field, and following it puts the cursor there.
    alert.get_by_role("link").filter(has_text="Email").click()
    assert focused_id(page) == "email"
    assert field.input_value() == "sam@", "what they typed is kept"
    assert page.get_by_label("I agree to receive").is_checked()
    check_page(page, "01b-signup-error")


# --- contrast --------------------------------------------------------------------------


def test_text_and_buttons_meet_wcag_aa_contrast(server: LiveServer, phone: Page) -> None:
    page = phone
    page.goto(server.url + "/")
    checked = []
    for selector in ("h1", "p.lead", "label", ".hint", "p.small", "button"):
        checked += text_contrast(page, selector)
    page.get_by_role("button", name="Sign up").click()  # empty form: the error styles
    shown(page.get_by_role("alert"))
    for selector in (".error-summary p", ".error-summary a", ".field-error"):
        checked += text_contrast(page, selector)
    low = [(text, round(ratio, 2)) for text, ratio in checked if ratio < WCAG_AA_NORMAL_TEXT]
    assert low == [], f"below {WCAG_AA_NORMAL_TEXT}:1: {low}"


def test_the_unsubscribe_button_meets_wcag_aa_contrast(server: LiveServer, phone: Page) -> None:
    # An address of its own: the module's server already sent EMAIL its confirmations,
    # and one address gets at most one every 10 minutes (issue 11).
    address = "contrast@example.com"
    httpx.post(server.url + "/subscribe", json={"email": address, "consent": True})
    # The signup is stored just after the 202 (no timing difference for known addresses).
    wait_until(
        lambda: bool(server.tick()) and bool(server.emails_to(address)),
        10,
        "the confirmation email",
    )
    page = phone
    page.goto(server.link_in(server.emails_to(address)[0], "/u/"))
    ratios = text_contrast(page, "button") + text_contrast(page, "p")
    low = [(text, round(ratio, 2)) for text, ratio in ratios if ratio < WCAG_AA_NORMAL_TEXT]
    assert low == [], f"below {WCAG_AA_NORMAL_TEXT}:1: {low}"


# --- the admin dashboard ---------------------------------------------------------------


def twilio_post(server: LiveServer, path: str, form: dict[str, str]) -> None:
    """A webhook signed as Twilio signs it, against STEADY_PUBLIC_URL."""
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(server.url + path, form)
    response = httpx.post(server.url + path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


def busy_service(server: LiveServer) -> None:
    """Three people confirm by email and one by text; all get their welcome and the texts
    are delivered; one email address unsubscribes; one stays pending."""
    addresses = [f"person{n}@example.com" for n in range(4)]
    for address in addresses:
        response = httpx.post(server.url + "/subscribe", json={"email": address, "consent": True})
        assert response.status_code == 202
    httpx.post(server.url + "/subscribe", json={"phone": PHONE, "consent": True})
    server.tick()
    for address in addresses[:3]:
        [confirmation] = server.emails_to(address)
        assert httpx.post(server.link_in(confirmation, "/confirm/")).status_code == 200
    inbound = {"From": PHONE, "To": "+15005550006", "Body": "YES", "MessageSid": "SM" + "1" * 32}
    twilio_post(server, "/webhooks/twilio/inbound", inbound)
    server.tick(NOON_NEW_YORK + timedelta(minutes=1))
    for text in server.sms.sent:
        status = {"MessageSid": f"outbox-{text.message_id}", "MessageStatus": "delivered"}
        twilio_post(server, f"/webhooks/twilio/status?m={text.message_id}", status)
    welcome = server.emails_to(addresses[2])[-1]
    assert httpx.post(server.link_in(welcome, "/u/")).status_code == 200
    server.tick(NOON_NEW_YORK + timedelta(hours=1))


@pytest.fixture
def admin_server(sqlite_url: str) -> Iterator[LiveServer]:
    with live_server(sqlite_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN) as running:
        busy_service(running)
        yield running


def test_admin_dashboard_signs_in_and_draws_its_charts(
    admin_server: LiveServer, browser: Browser
) -> None:
    context = browser.new_context(viewport=DESKTOP_VIEWPORT)
    page = context.new_page()
    page.goto(admin_server.url + "/admin")
    token_field = page.get_by_label("Admin token")
    assert token_field.is_visible()
    assert_every_field_is_labelled(page)
    screenshot(page, "admin-login")
    token_field.fill(ADMIN_TOKEN)
    with page.expect_response(lambda r: r.url.endswith("/admin/login")) as sent:
        page.keyboard.press("Enter")  # the form posts; a good token redirects to /admin
    # Chromium sends `Origin: null` on a form post from a page served with
    # `Referrer-Policy: no-referrer`, which the login's same-origin check refuses.
    login = sent.value
    assert login.status == 303, f"sign-in answered {login.status}: {login.text()[:200]}"
    figures = shown(page.get_by_role("list", name="Headline figures"))
    text = figures.inner_text()
    for label in ("Active subscribers", "Flagged", "Sent, last 24", "Queue lag", "Opt-outs"):
        assert label in text, label
    active = figures.get_by_role("listitem").filter(has_text="Active subscribers")
    assert active.locator(".value").inner_text() == "3"
    assert "1 pending" in active.inner_text()

    charts = page.locator("svg.chart")
    assert charts.count() >= 4
    titles = [chart.locator("title").first.text_content() for chart in charts.all()]
    assert all(t and t.strip() for t in titles), titles
    for chart in charts.all():
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 100, "charts are drawn at a readable size"
        assert box["height"] > 20, "and not collapsed"
    # Bars are the <rect>s that carry their own <title>; the legend swatches do not.
    bars = page.locator("svg.chart rect:has(title)")
    drawn = [b for b in bars.all() if (box := b.bounding_box()) and box["width"] * box["height"]]
    assert drawn, "at least one chart has data on it"
    assert_no_horizontal_scroll(page)
    screenshot(page, "admin-dashboard")

    page.set_viewport_size(PHONE_VIEWPORT)
    assert_no_horizontal_scroll(page)
    screenshot(page, "admin-dashboard-phone")

    page.get_by_role("button", name="Sign out").click()
    shown(page.get_by_label("Admin token"))
    context.close()
