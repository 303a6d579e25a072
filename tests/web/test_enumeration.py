"""Known and unknown addresses look the same to a signup's caller (issue 11): the same
answer, the same work before the answer, and the same time.

Time alone is a noisy witness on a shared 2-core machine, so the test also counts
the SQL statements each request runs before its response is complete (a
SQLAlchemy event on the engine): the work that could make the two differ.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import numpy as np
from scipy.stats import ks_2samp
from sqlalchemy import event, func, select

from service.storage.models import Channel, ChannelStatus, Subscriber
from service.tokens import Purpose, make_token
from tests.support.world import Harness, make_settings

NOON = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
REQUESTS_EACH = 40
PAGE_REQUESTS_EACH = 10
# Medians within this share of each other, or this close in absolute terms
# (below a couple of milliseconds the scheduler's jitter is all there is).
RELATIVE_TOLERANCE = 0.25
NOISE_FLOOR_SECONDS = 0.003


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float  # until the last byte of the response was sent
    statements: int  # SQL statements run before that


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


@contextmanager
def counting_statements(harness: Harness) -> Iterator[StatementCounter]:
    engine = harness.runtime.sessions.kw["bind"]
    counter = StatementCounter()
    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


def post_signup(harness: Harness, counter: StatementCounter, email: str) -> Answer:
    body = f'{{"email": "{email}", "consent": true}}'.encode()
    return post(harness, counter, "/subscribe", body, "application/json")


def post(
    harness: Harness, counter: StatementCounter, path: str, body: bytes, content_type: str
) -> Answer:
    """POST straight into the ASGI app, timing up to the response's end (what a
    caller sees), not the work the app does after it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"steady.example.org"),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("192.0.2.10", 50000),
        "server": ("steady.example.org", 443),
    }
    answer = Answer(status=0, body=b"", seconds=0.0, statements=0)

    async def run() -> None:
        done = anyio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")
                if not message.get("more_body"):
                    answer.seconds = time.perf_counter() - started
                    answer.statements = counter.count - before
                    done.set()

        before = counter.count
        started = time.perf_counter()
        await harness.client.app(scope, receive, send)

    anyio.run(run)
    return answer


def known_addresses(harness: Harness, n: int) -> list[str]:
    addresses = [f"known{i}@example.com" for i in range(n)]
    with harness.runtime.sessions.begin() as session:
        for address in addresses:
            person = Subscriber(timezone="America/New_York", created_at=NOON)
            person.channels.append(
                Channel(
                    kind="email", address=address, status=ChannelStatus.ACTIVE, confirmed_at=NOON
                )
            )
            session.add(person)
    return addresses


def same_shape(known: list[Answer], unknown: list[Answer]) -> None:
    a = sorted(x.seconds for x in known)
    b = sorted(x.seconds for x in unknown)
    quartiles = {q: (float(np.quantile(a, q)), float(np.quantile(b, q))) for q in (0.25, 0.5, 0.75)}
    for q, (x, y) in quartiles.items():
        allowed = max(RELATIVE_TOLERANCE * max(x, y), NOISE_FLOOR_SECONDS)
        assert abs(x - y) <= allowed, (q, quartiles)
    # A real difference of a few milliseconds (a query more on one side) separates 40
    # and 40 samples far past this level; noise alone reaches it once in 10,000 runs.
    assert ks_2samp(a, b).pvalue > 1e-4, quartiles


def test_known_and_unknown_addresses_get_the_same_answer_work_and_time(sqlite_url: str) -> None:
    harness = Harness(
        make_settings(
            sqlite_url,
            STEADY_SIGNUPS_PER_CLIENT_PER_HOUR="100000",
            STEADY_SIGNUPS_PER_PREFIX_PER_HOUR="100000",
        ),
        now=NOON,
    )
    known = known_addresses(harness, REQUESTS_EACH)
    unknown = [f"new{i}@example.com" for i in range(REQUESTS_EACH)]
    post_signup(harness, StatementCounter(), "warm-up@example.com")  # first-call costs

    answers: dict[str, list[Answer]] = {"known": [], "unknown": []}
    with counting_statements(harness) as counter:
        for i, pair in enumerate(zip(known, unknown, strict=True)):
            # Alternate which goes first: each request runs after the other side's
            # background work as often as after its own.
            order = ("known", "unknown") if i % 2 == 0 else ("unknown", "known")
            for name in order:
                address = pair[0] if name == "known" else pair[1]
                answers[name].append(post_signup(harness, counter, address))

    replies = {(a.status, a.body) for group in answers.values() for a in group}
    assert len(replies) == 1, "one answer for all"
    assert next(iter(replies))[0] == 202
    work = {name: {a.statements for a in group} for name, group in answers.items()}
    assert work["known"] == work["unknown"], work
    medians = {name: statistics.median(a.seconds for a in group) for name, group in answers.items()}
    # Each known request beside the unknown one right after it: paired, a slow
    # spell of the machine weighs on both sides alike.
    gap = abs(
        statistics.median(
            k.seconds - u.seconds for k, u in zip(answers["known"], answers["unknown"], strict=True)
        )
    )
    allowed = max(RELATIVE_TOLERANCE * max(medians.values()), NOISE_FLOOR_SECONDS)
    assert gap <= allowed, (gap, medians)
    # The whole distributions, not only their middles: each quartile alike, and a
    # two-sample Kolmogorov-Smirnov test that does not tell them apart.
    same_shape(answers["known"], answers["unknown"])

    with harness.runtime.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Channel))
    assert stored == 2 * REQUESTS_EACH + 1, "the signups were recorded after their answers"


def test_adding_a_known_or_unknown_number_from_the_page_looks_the_same(sqlite_url: str) -> None:
    """Found by audit11: the preferences page's "add a phone" did its database work
    before answering, more of it for a number nobody had (a new person, a
    confirmation) than for one already subscribed, so anyone with one confirmed
    email could learn whether a given number (a partner's) uses Steady."""
    harness = Harness(
        make_settings(
            sqlite_url,
            STEADY_SIGNUPS_PER_CLIENT_PER_HOUR="100000",
            STEADY_SIGNUPS_PER_PREFIX_PER_HOUR="100000",
        ),
        now=NOON,
    )
    secret = harness.settings.secret_key.get_secret_value()
    harness.client.post("/subscribe", json={"email": "owner@example.com", "consent": True})
    with harness.runtime.sessions() as session:
        owner = session.scalar(select(Channel.id).where(Channel.kind == "email"))
    assert owner is not None
    harness.client.post(f"/confirm/{make_token(secret, Purpose.CONFIRM, owner)}")
    page = f"/preferences/{make_token(secret, Purpose.PREFERENCES, owner)}"
    known = [f"+1212555{n:04d}" for n in range(1000, 1000 + PAGE_REQUESTS_EACH)]
    unknown = [f"+1312555{n:04d}" for n in range(1000, 1000 + PAGE_REQUESTS_EACH)]
    with harness.runtime.sessions.begin() as session:
        for number in known:
            person = Subscriber(timezone="America/New_York", created_at=NOON)
            person.channels.append(
                Channel(kind="sms", address=number, status=ChannelStatus.ACTIVE, confirmed_at=NOON)
            )
            session.add(person)
    form = "application/x-www-form-urlencoded"
    post(harness, StatementCounter(), page, b"new_phone=%2B16175550100", form)  # warm-up

    answers: dict[str, list[Answer]] = {"known": [], "unknown": []}
    with counting_statements(harness) as counter:
        for i, pair in enumerate(zip(known, unknown, strict=True)):
            order = ("known", "unknown") if i % 2 == 0 else ("unknown", "known")
            for name in order:
                number = pair[0] if name == "known" else pair[1]
                body = f"new_phone={number.replace('+', '%2B')}".encode()
                answers[name].append(post(harness, counter, page, body, form))

    replies = {(a.status, a.body) for group in answers.values() for a in group}
    assert len(replies) == 1, "one answer for all"
    assert next(iter(replies))[0] == 200
    work = {name: {a.statements for a in group} for name, group in answers.items()}
    assert work["known"] == work["unknown"], work
    with harness.runtime.sessions() as session:
        waiting = session.scalar(
            select(func.count()).select_from(Channel).where(Channel.address.in_(unknown))
        )
    assert waiting == PAGE_REQUESTS_EACH, "the unknown numbers were asked to join after the answer"
