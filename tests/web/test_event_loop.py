"""Routes that write to the database leave the event loop free.

The test holds SQLite's write lock, so a route's write waits (the busy timeout)
inside its database call. While it waits, `/healthz` on the same app must still
answer: a synchronous database call on the event loop would stall it until the
lock is released.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from service.storage.db import get_engine
from service.storage.models import Subscriber
from service.tokens import Purpose, make_token
from tests.support.world import PUBLIC_URL, TEST_TWILIO_TOKEN, Harness, confirmation, make_settings

PHONE = "+12125550142"
EMAIL = "sam@example.com"
WRITES = ("INSERT", "UPDATE", "DELETE")


def _signed_twilio(path: str, params: dict[str, str]) -> dict[str, Any]:
    signature = RequestValidator(TEST_TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    return {"data": params, "headers": {"X-Twilio-Signature": signature}}


def _signup(_harness: Harness) -> tuple[str, dict[str, Any]]:
    return "/subscribe", {"json": {"phone": "+12125550199", "consent": True}}


def _inbound(_harness: Harness) -> tuple[str, dict[str, Any]]:
    path = "/webhooks/twilio/inbound"
    return path, _signed_twilio(
        path, {"From": PHONE, "To": "+15005550006", "Body": "YES", "MessageSid": "SM" + "1" * 32}
    )


def _status(harness: Harness) -> tuple[str, dict[str, Any]]:
    message = confirmation(harness, "sms")
    path = f"/webhooks/twilio/status?m={message.id}"
    params = {"MessageSid": message.provider_id or "", "MessageStatus": "delivered"}
    return path, _signed_twilio(path, params)


def _events(harness: Harness) -> tuple[str, dict[str, Any]]:
    message = confirmation(harness, "email")
    events = [
        {
            "event": "delivered",
            "email": EMAIL,
            "sg_event_id": "event-1",
            "steady_message_id": str(message.id),
            "timestamp": 1,
        }
    ]
    return "/webhooks/sendgrid/events", {
        "content": json.dumps(events),
        "headers": {"Content-Type": "application/json"},
    }


def _preferences(harness: Harness) -> tuple[str, dict[str, Any]]:
    message = confirmation(harness, "sms")
    assert message.channel_id is not None
    secret = harness.settings.secret_key.get_secret_value()
    token = make_token(secret, Purpose.PREFERENCES, message.channel_id)
    return f"/preferences/{token}", {"data": {"cadence": "14"}}


@pytest.mark.parametrize(
    "route",
    [_signup, _inbound, _status, _events, _preferences],
    ids=["signup", "twilio_inbound", "twilio_status", "sendgrid_events", "preferences"],
)
def test_healthz_answers_while_a_route_waits_for_the_database(
    sqlite_url: str, route: Callable[[Harness], tuple[str, dict[str, Any]]]
) -> None:
    harness = Harness(make_settings(sqlite_url))
    response = harness.client.post(
        "/subscribe", json={"phone": PHONE, "email": EMAIL, "consent": True}
    )
    assert response.status_code == 202
    harness.tick()  # the confirmations go out: callbacks and events have a message to name
    path, request = route(harness)

    writing = threading.Event()

    def note_write(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            writing.set()

    engine = get_engine(harness.settings.database_url)
    event.listen(engine, "before_cursor_execute", note_write)
    lock = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # SQLite's write lock: the route's write must wait

    async def scenario() -> tuple[int, int, bool]:
        transport = httpx.ASGITransport(app=harness.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            slow = asyncio.create_task(client.post(path, **request))
            for _ in range(500):  # until the route is inside its write, waiting on the lock
                if writing.is_set():
                    break
                await asyncio.sleep(0.01)
            assert writing.is_set(), "the route never reached its database write"
            health = await asyncio.wait_for(client.get("/healthz"), timeout=5)
            answered_while_waiting = not slow.done()
            lock.execute("ROLLBACK")
            answer = await asyncio.wait_for(slow, timeout=30)
            return health.status_code, answer.status_code, answered_while_waiting

    try:
        health_status, route_status, answered_while_waiting = asyncio.run(scenario())
    finally:
        event.remove(engine, "before_cursor_execute", note_write)
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    assert health_status == 200
    assert answered_while_waiting, "/healthz waited for another request's database call"
    assert route_status < 400, "the route finished its work once the lock was released"


ADMIN_TOKEN = "admin-token-for-the-event-loop-test-0123456789"


@pytest.mark.parametrize("action", ["reply", "clear-flag"])
def test_the_review_forms_read_and_write_the_database_off_the_event_loop(
    sqlite_url: str, action: str
) -> None:
    """The admin page's own forms (async, to read the form) check the session cookie,
    a database read, before their work: no statement of theirs may run on the event
    loop's thread. (SQLite's write lock cannot show a read on the loop: in WAL mode
    readers never wait.)"""
    harness = Harness(make_settings(sqlite_url, STEADY_ADMIN_TOKEN=ADMIN_TOKEN))
    response = harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    assert response.status_code == 202
    harness.tick()
    harness.text_in(PHONE, "YES")
    harness.text_in(PHONE, "I want to kill myself")  # flagged for review
    with harness.runtime.sessions() as session:
        subscriber_id = session.scalars(select(Subscriber.id)).one()

    threads: set[int] = set()

    def note_thread(*_args: Any) -> None:
        threads.add(threading.get_ident())

    engine = get_engine(harness.settings.database_url)

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=harness.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            login = await client.post("/admin/login", data={"token": ADMIN_TOKEN})
            assert login.status_code == 303, login.text
            event.listen(engine, "before_cursor_execute", note_thread)
            try:
                answer = await client.post(
                    f"/admin/review/{subscriber_id}/{action}",
                    data={"body": "We saw your message. The lines above are open now."},
                )
            finally:
                event.remove(engine, "before_cursor_execute", note_thread)
            return answer.status_code, threading.get_ident()

    status, loop_thread = asyncio.run(scenario())
    assert status == 303, "the form did its work and went back to the page"
    assert threads, "the route ran no statement: nothing was checked"
    assert loop_thread not in threads, "a database statement ran on the event loop"


def test_the_crisis_model_is_trained_when_the_app_starts_not_on_the_first_text(
    tmp_path: Any,
) -> None:
    """In a fresh process (this one may have trained it already): start the app, send no
    text, and the model is there once the warm-up thread ends."""
    import subprocess
    import sys

    script = f"""
from fastapi.testclient import TestClient
from service.replies import crisis
from service.web.app import create_app
from tests.support.world import make_settings

app = create_app(make_settings("sqlite:///{tmp_path}/warm.db"))
assert crisis._trained_model.cache_info().currsize == 0
with TestClient(app):
    app.state.crisis_warmup.join(60)
print(crisis._trained_model.cache_info().currsize)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "1"
