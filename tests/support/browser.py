"""Browser-test helpers: a live Steady server, headless Chromium, and page checks.

The server is the real app under uvicorn on a free local port, in a thread; its
providers are `RecordingProvider`s, so a test reads the email it "sent" and opens
the link in it, as a person would. `STEADY_PUBLIC_URL` is the server's own URL,
so the links in messages point at it.

Chromium is Debian's `chromium` package driven by Playwright's Python package
(`playwright install` needs the internet, which CI does not have). Without the
browser or the package the tests skip, saying why; with STEADY_REQUIRE_BROWSER=1
(`.ci/run`) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from service.channels import ChannelKind
from service.providers.base import Provider
from service.sending.runtime import Runtime, TickReport
from service.settings import Settings
from service.web.app import create_app
from tests.support.world import RecordingProvider, make_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

REQUIRE_BROWSER = os.environ.get("STEADY_REQUIRE_BROWSER") == "1"
# Where screenshots go; CI keeps this folder as an artefact (ignored by git).
ARTIFACTS = Path(
    os.environ.get(
        "STEADY_BROWSER_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts/browser"
    )
)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
# Without the networking flags Chromium phones home at start-up, and on a machine
# with no internet those refused connections fill the log.
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}
DESKTOP_VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# WCAG 2.2 SC 1.4.3: normal-size text needs 4.5:1 against its background.
WCAG_AA_NORMAL_TEXT = 4.5
SERVER_START_SECONDS = 10
NOON_NEW_YORK = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def chromium_path() -> str | None:
    """STEADY_CHROMIUM if set, else Debian's chromium on PATH."""
    configured = os.environ.get("STEADY_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401 (only checking that it imports)
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install chromium, or set STEADY_CHROMIUM)"
    return None


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    assert executable is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class LiveServer:
    """Steady serving on 127.0.0.1, with a clock and providers the test controls."""

    settings: Settings
    url: str
    runtime: Runtime
    sms: RecordingProvider
    email: RecordingProvider
    now: datetime = NOON_NEW_YORK
    _emails_read: int = field(default=0, repr=False)

    def tick(self, now: datetime | None = None) -> TickReport:
        """One planning and dispatch pass at `now`, which becomes the server's time too."""
        if now is not None:
            self.now = now
        return self.runtime.tick(self.now)

    def emails_to(self, address: str) -> list[str]:
        """Plain-text bodies of the emails sent to `address`, oldest first."""
        return [m.body for m in self.email.sent if m.to == address]

    def link_in(self, body: str, path: str) -> str:
        """The first link to `path` (e.g. "/confirm/") on this server in a message body."""
        match = re.search(re.escape(self.url + path) + r"\S+", body)
        assert match, f"no {path} link in:\n{body}"
        return match.group(0)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def live_server(database_url: str, **overrides: Any) -> Iterator[LiveServer]:
    """Run the app under uvicorn in a thread until the block ends."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, STEADY_PUBLIC_URL=url, **overrides)
    sms, email = RecordingProvider(), RecordingProvider()
    providers: dict[ChannelKind, Provider] = {"sms": sms, "email": email}
    runtime = Runtime.from_settings(settings, providers=providers)
    server = LiveServer(settings, url, runtime, sms, email)
    app = create_app(settings, sessions=runtime.sessions, clock=lambda: server.now)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not uvicorn_server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield server
    finally:
        uvicorn_server.should_exit = True
        thread.join(SERVER_START_SECONDS)
        sock.close()


# --- page checks -----------------------------------------------------------------------


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot into the artefacts folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]}px in {widths[1]}px"


def assert_every_field_is_labelled(page: Page) -> None:
    """Every visible input, select and textarea has a non-empty accessible label."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.labels && [...el.labels].some(l => l.textContent.trim()))
                          && !el.getAttribute('aria-label')
                          && !el.getAttribute('aria-labelledby'))
            .map(el => el.name || el.id || el.outerHTML)"""
    )
    assert unlabelled == [], f"fields without a label on {page.url}: {unlabelled}"


# The colours an element's text is drawn in and drawn on: the background is the
# first opaque one up the tree (none of our pages put text over an image).
_COLOURS_JS = """el => {
  const style = getComputedStyle(el);
  let node = el, background = 'rgba(0, 0, 0, 0)';
  while (node) {
    const bg = getComputedStyle(node).backgroundColor;
    const alpha = bg.startsWith('rgba') ? parseFloat(bg.split(',')[3]) : 1;
    if (alpha > 0) { background = bg; break; }
    node = node.parentElement;
  }
  if (!node) background = 'rgb(255, 255, 255)';
  return [style.color, background];
}"""


def _rgb(css: str) -> tuple[float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    assert len(numbers) >= 3, f"not an rgb() colour: {css}"
    if len(numbers) == 4:
        assert numbers[3] == 1, f"translucent colour, cannot judge contrast: {css}"
    return numbers[0], numbers[1], numbers[2]


def _luminance(css: str) -> float:
    """WCAG relative luminance of an sRGB colour."""

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours, 1 to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_contrast(page: Page, selector: str) -> list[tuple[str, float]]:
    """(text, ratio) for every visible element matching `selector`."""
    found = []
    for element in page.locator(selector).all():
        if not element.is_visible():
            continue
        foreground, background = element.evaluate(_COLOURS_JS)
        found.append((element.inner_text()[:40], contrast_ratio(foreground, background)))
    assert found, f"nothing visible matches {selector} on {page.url}"
    return found
