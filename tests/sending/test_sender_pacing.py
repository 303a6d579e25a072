"""Dispatch paced per sender (issue 5): priorities, slots, leases and the shared limiter."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from sqlalchemy import select

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import free_port, wait_until
from service.pacing.window import midday_zone
from service.providers.twilio.sms import TwilioSmsProvider
from service.sending.claims import Outcome
from service.sending.dispatch import SEND_THREADS, Dispatcher
from service.sending.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from service.storage.models import Message
from tests.sending.dispatch_helpers import PHONE, confirmation
from tests.support.world import TEST_TWILIO_TOKEN, Harness, make_settings, plan_welcome_nudges

# --- provider rate limits per sender (issue 5) --------------------------------------------

SENDER = "+15005550006"
NEW_YORK = "America/New_York"  # the harness's 17:00 UTC is mid-day there


def backlog_phones(count: int) -> list[str]:
    return [f"+1202555{index:04d}" for index in range(count)]


@dataclass
class Paced:
    """Steady with a rate-limited Twilio sender (the sandbox) and a dispatcher of its own."""

    harness: Harness
    dispatcher: Dispatcher
    limiter: RateLimiter

    @property
    def sender(self) -> str:
        return self.dispatcher.pacer.limits["sms"].sender

    def drain(self, now: datetime) -> None:
        """This dispatcher's batches until nothing is due."""
        self.dispatcher.housekeeping(now)
        while len(self.dispatcher.run_batch(now)) == self.harness.settings.dispatch_batch_size:
            pass

    def rows(self, ids: list[int]) -> list[Message]:
        with self.harness.runtime.sessions() as session:
            return list(session.scalars(select(Message).where(Message.id.in_(ids))))

    def sending(self) -> int:
        with self.harness.runtime.sessions() as session:
            return len(session.scalars(select(Message.id).where(Message.status == "sending")).all())


def paced_steady(
    database_url: str,
    sandbox: SandboxServer,
    limiter: RateLimiter | None = None,
    *,
    provider_timeout: float = 2.0,
    **settings: str,
) -> Paced:
    sandbox.reset()
    harness = Harness(make_settings(database_url, TWILIO_FROM_NUMBER=SENDER, **settings))
    harness.runtime.providers["sms"] = TwilioSmsProvider(
        account_sid="AC" + "1" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number=SENDER,
        api_url=sandbox.url,
        timeout_seconds=provider_timeout,
    )
    limiter = limiter or LocalRateLimiter()
    dispatcher = Dispatcher(
        harness.settings, harness.runtime.sessions, harness.runtime.providers, limiter=limiter
    )
    return Paced(harness, dispatcher, limiter)


def test_a_confirmation_due_behind_a_backlog_of_nudges_goes_before_the_rest(
    database_url: str, sandbox: SandboxServer
) -> None:
    paced = paced_steady(database_url, sandbox, STEADY_SMS_RATE_PER_SECOND="10")
    claim = paced.dispatcher.pacer.limits["sms"].claim_size
    assert claim == 20  # 10/s × 2 s
    harness = paced.harness
    backlog = plan_welcome_nudges(
        harness.settings, backlog_phones(40), harness.now - timedelta(minutes=1), NEW_YORK
    )
    outcomes: list[Outcome] = []
    worker = threading.Thread(
        target=lambda: outcomes.extend(paced.dispatcher.run_batch(harness.now))
    )
    worker.start()
    wait_until(lambda: len(sandbox.messages("twilio")) >= 5, 10, "the first nudges")
    # A signup while the backlog is being paced: its confirmation is due after every nudge.
    assert (
        harness.client.post("/subscribe", json={"phone": PHONE, "consent": True}).status_code == 202
    )
    most_sending = 0
    while worker.is_alive():
        most_sending = max(most_sending, paced.sending())
        time.sleep(0.02)
    worker.join()

    sent_to = [message["to"] for message in sandbox.messages("twilio")]
    assert len(sent_to) == len(backlog) + 1
    assert len(outcomes) == len(backlog) + 1
    position = sent_to.index(PHONE)
    # The confirmation leads the next claim, at the latest: only nudges already
    # claimed when it came due go before it, and at least the rest of the backlog after.
    assert position <= claim
    assert len(sent_to) - position - 1 >= len(backlog) - claim
    assert most_sending <= claim, "a 1-in-20 claim, never the whole backlog"
    assert confirmation(harness).status == "sent"


@pytest.mark.parametrize("shared", ["in_process", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_channel_whose_next_slot_is_far_off_goes_back_unsent_with_its_attempt(
    database_url: str, sandbox: SandboxServer, request: pytest.FixtureRequest, shared: str
) -> None:
    if shared == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = f"test:dispatch:{uuid.uuid4().hex}:"
        limiter: RateLimiter = RedisRateLimiter.from_url(url, prefix)
        other_worker: RateLimiter = RedisRateLimiter.from_url(url, prefix)
    else:
        limiter = other_worker = LocalRateLimiter()
    paced = paced_steady(database_url, sandbox, limiter, STEADY_SMS_RATE_PER_SECOND="1")
    harness = paced.harness
    nudges = plan_welcome_nudges(
        harness.settings, backlog_phones(3), harness.now - timedelta(minutes=1), NEW_YORK
    )
    harness.client.post("/subscribe", json={"email": "pat@example.org", "consent": True})
    # Other workers already hold this sender's next 8 seconds.
    for _ in range(8):
        assert other_worker.reserve(paced.sender, 1.0, 60).granted

    with structlog.testing.capture_logs() as logs:
        outcomes = paced.dispatcher.run_batch(harness.now)

    assert [(o.channel, o.kind, o.status) for o in outcomes] == [("email", "confirm", "sent")]
    assert len(harness.email.sent) == 1, "the free channel in the same batch still went"
    assert sandbox.messages("twilio") == []
    for row in paced.rows(nudges):
        assert (row.status, row.attempts, row.lease_until) == ("scheduled", 0, None)
    released = [e for e in logs if e["event"] == "claims_released"]
    assert [(e["channel"], e["reason"], e["count"]) for e in released] == [("sms", "paced", 2)]


def test_nothing_is_handed_over_once_the_claims_lease_is_nearly_over(
    database_url: str, sandbox: SandboxServer
) -> None:
    # A 5 s lease keeps half for sending: nothing may start later than 2.5 s after the claim.
    paced = paced_steady(
        database_url,
        sandbox,
        provider_timeout=5.0,
        STEADY_SMS_RATE_PER_SECOND="0",
        STEADY_SEND_LEASE_SECONDS="5",
    )
    harness = paced.harness
    # An unpaced channel sends in SEND_THREADS threads: rounds start at 0, 1 and 2 s.
    count = 5 * SEND_THREADS
    nudges = plan_welcome_nudges(
        harness.settings, backlog_phones(count), harness.now - timedelta(minutes=1), NEW_YORK
    )
    sandbox.add_fault(timeout=True, sleep_seconds=1.0)  # a slow API: 1 s a message

    outcomes = paced.dispatcher.run_batch(harness.now)

    sent = [o for o in outcomes if o.status == "sent"]
    assert 1 <= len(sent) <= 3 * SEND_THREADS
    assert len(sandbox.messages("twilio")) == len(sent)
    rows = paced.rows(nudges)
    assert sorted(row.status for row in rows) == sorted(
        ["sent"] * len(sent) + ["scheduled"] * (count - len(sent))
    )
    for row in rows:
        if row.status == "scheduled":
            assert (row.attempts, row.lease_until) == (0, None)
    # Released, not stranded: the next pass sends the rest.
    sandbox.reset()
    paced.drain(harness.now + timedelta(seconds=30))
    assert {row.status for row in paced.rows(nudges)} == {"sent"}


def test_an_unreachable_limiter_sends_nothing_on_that_channel_and_warns_once(
    database_url: str, sandbox: SandboxServer
) -> None:
    harness = paced_steady(
        database_url,
        sandbox,
        STEADY_SMS_RATE_PER_SECOND="1",
        STEADY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    ).harness
    # The dispatcher the runtime builds picks the shared limiter from the settings.
    dispatcher = harness.runtime.dispatcher
    assert isinstance(dispatcher.pacer.limiter, RedisRateLimiter)
    nudges = plan_welcome_nudges(
        harness.settings, backlog_phones(2), harness.now - timedelta(minutes=1), NEW_YORK
    )

    with structlog.testing.capture_logs() as logs:
        first = dispatcher.run_batch(harness.now)
        second = harness.runtime.dispatch(harness.now + timedelta(seconds=5))

    assert first == []
    assert second.outcomes == []
    assert sandbox.messages("twilio") == []
    with harness.runtime.sessions() as session:
        rows = session.scalars(select(Message).where(Message.id.in_(nudges))).all()
    assert [(r.status, r.attempts, r.lease_until) for r in rows] == [("scheduled", 0, None)] * 2
    events = [e["event"] for e in logs]
    assert events.count("rate_limiter_unavailable") == 1, "one warning per outage"
    assert [e["reason"] for e in logs if e["event"] == "claims_released"] == ["unavailable"] * 2


def test_sent_at_is_each_messages_own_handoff_time(
    database_url: str, sandbox: SandboxServer
) -> None:
    paced = paced_steady(database_url, sandbox, STEADY_SMS_RATE_PER_SECOND="5")
    now = datetime.now(UTC)  # a worker's pass: the real time
    nudges = plan_welcome_nudges(paced.harness.settings, backlog_phones(4), now, midday_zone(now))

    paced.dispatcher.run_batch(now)

    sent_at = sorted(row.sent_at for row in paced.rows(nudges) if row.sent_at is not None)
    assert len(sent_at) == len(nudges)
    assert sent_at[0] > now
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(sent_at)]
    # Each stamped when its own send was answered, not all with the batch's start: they
    # span the 200 ms slots (5/s) between them. A gap alone may be short, when one
    # answer came late under load and the next slot had already begun.
    assert all(0 < gap < 1.0 for gap in gaps), gaps
    assert (sent_at[-1] - sent_at[0]).total_seconds() >= 0.19 * len(gaps), gaps
    assert len(sandbox.messages("twilio")) == len(nudges)


def test_a_simulated_pass_happens_at_its_own_now(database_url: str, sandbox: SandboxServer) -> None:
    """`steady tick --now` and the tests' clock: real seconds stay off that timeline."""
    paced = paced_steady(database_url, sandbox, STEADY_SMS_RATE_PER_SECOND="5")
    harness = paced.harness
    nudges = plan_welcome_nudges(harness.settings, backlog_phones(3), harness.now, NEW_YORK)

    paced.dispatcher.run_batch(harness.now)

    assert {row.sent_at for row in paced.rows(nudges)} == {harness.now}
    assert len(sandbox.messages("twilio")) == len(nudges), "still paced in real time"
