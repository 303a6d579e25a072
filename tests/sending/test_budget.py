"""The provider's budget (issue 13): segments per second and per day, replies first,
TwiML replies charged, and ValidityPeriod on the wire with 30036 becoming `expired`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select

from service.devtools.sandbox.receiver import WebhookReceiver
from service.devtools.sandbox.server import SandboxServer
from service.messages.segments import count_segments
from service.pacing.window import midday_zone
from service.providers.twilio.sms import TwilioSmsProvider
from service.sending.budget import NUDGE_SHARE, ReplyCharger, SenderLimit
from service.sending.dispatch import Dispatcher
from service.sending.ratelimit import (
    DAY_KEY_PART,
    DAY_MINUTES,
    MICROSECONDS,
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    RollingDay,
    gcra_reserve,
    interval_us,
)
from service.storage.models import Message
from tests.support.world import TEST_TWILIO_TOKEN, Harness, make_settings, plan_welcome_nudges

SENDER = "+15005550006"
PHONE = "+12125550142"
STATUS_PATH = "/webhooks/twilio/status"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"test:budget:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["in_process", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    if request.param == "in_process":
        yield LocalRateLimiter()
        return
    url = request.getfixturevalue("redis_url")
    shared = RedisRateLimiter.from_url(url, request.getfixturevalue("redis_prefix"))
    yield shared
    shared.close()


# --- segments per second -------------------------------------------------------------


def test_a_long_message_takes_one_interval_per_segment() -> None:
    interval = interval_us(10.0)  # 100 ms a segment
    first, tat = gcra_reserve(0, 0, interval, 10 * MICROSECONDS, segments=3)
    second, tat = gcra_reserve(tat, 0, interval, 10 * MICROSECONDS, segments=1)
    third, _ = gcra_reserve(tat, 0, interval, 10 * MICROSECONDS, segments=2)
    assert [r.wait for r in (first, second, third)] == [0.0, 0.3, 0.4]


def test_the_limiter_spaces_messages_by_their_segments(limiter: RateLimiter) -> None:
    sender = "sms:twilio:+1"
    waits = [
        limiter.reserve(sender, 10.0, 5.0, segments=segments).wait for segments in (3, 2, 1, 1)
    ]
    # Slots at 0, 0.3, 0.5 and 0.6 s; the calls themselves take a little of each wait.
    for wait, slot in zip(waits, (0.0, 0.3, 0.5, 0.6), strict=True):
        assert slot - 0.05 < wait <= slot
    refused = limiter.reserve(sender, 10.0, 0.2, segments=1)
    assert not refused.granted
    assert not refused.day_spent
    assert 0.6 < refused.wait <= 0.7


def test_a_charge_always_goes_and_pushes_the_next_slot(limiter: RateLimiter) -> None:
    sender = "sms:twilio:+2"
    assert limiter.reserve(sender, 10.0, 0).granted
    for _ in range(5):
        limiter.charge(sender, 10.0, 2)  # five 2-segment replies: a second of budget
    after = limiter.reserve(sender, 10.0, 5.0)
    assert 1.0 < after.wait <= 1.1
    assert limiter.used_today(sender) == 1 + 10 + 1


# --- segments per day ------------------------------------------------------------------


def test_a_day_allowance_refuses_what_would_pass_it_and_changes_nothing(
    limiter: RateLimiter,
) -> None:
    sender = "sms:twilio:+3"
    assert limiter.reserve(sender, 0, 0, segments=2, day_allowance=5).granted
    assert limiter.reserve(sender, 0, 0, segments=2, day_allowance=5).granted
    refused = limiter.reserve(sender, 0, 0, segments=2, day_allowance=5)
    assert (refused.granted, refused.day_spent) == (False, True)
    assert limiter.used_today(sender) == 4
    # A larger allowance (a reply's) still fits; a charge goes past any allowance.
    assert limiter.reserve(sender, 0, 0, segments=1, day_allowance=6).granted
    limiter.charge(sender, 0, 3)
    assert limiter.used_today(sender) == 8


def test_nudges_stop_at_ninety_percent_and_replies_may_use_the_rest() -> None:
    limit = SenderLimit("sms:twilio:+1", rate=1.0, per_day=2000)
    assert limit.allowance(priority=1) == int(2000 * NUDGE_SHARE) == 1800
    assert limit.allowance(priority=0) == 2000
    assert SenderLimit("sms:twilio:+1", rate=1.0).allowance(priority=1) == 0


def test_the_rolling_day_forgets_a_bucket_only_after_24_hours() -> None:
    day = RollingDay()
    day.add(100, 5)
    day.add(100, 1)
    day.add(700, 2)
    assert day.used(100 + DAY_MINUTES) == 8, "24 h after minute 100 it still counts"
    assert day.used(101 + DAY_MINUTES) == 2
    assert day.used(701 + DAY_MINUTES) == 0


@pytest.mark.redis
def test_redis_drops_day_buckets_older_than_24_hours(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, redis_prefix)
    sender = "sms:twilio:+4"
    limiter.charge(sender, 0, 1)  # creates the day hash at the server's minute
    client = redis.Redis.from_url(redis_url)
    seconds, _ = client.time()
    minute = int(seconds) // 60
    key = redis_prefix + DAY_KEY_PART + sender
    # Backdate: 7 segments 25 h ago, 4 segments 23 h ago, plus the 1 just sent.
    client.hset(key, mapping={"o": minute - 25 * 60, str(minute - 25 * 60): 7})
    client.hset(key, mapping={str(minute - 23 * 60): 4, "t": 12})
    assert limiter.used_today(sender) == 5
    assert client.hget(key, str(minute - 25 * 60)) is None
    assert 0 < client.pttl(key) <= (DAY_MINUTES + 2) * 60_000
    # A gap of more than a day clears the whole count at once.
    client.hset(key, mapping={"o": minute - 3 * DAY_MINUTES})
    assert limiter.used_today(sender) == 0
    client.close()
    limiter.close()


# --- the dispatcher spends the day ---------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(receiver: WebhookReceiver) -> Iterator[SandboxServer]:
    with SandboxServer(
        public_url=receiver.url, auth_token=TEST_TWILIO_TOKEN, callback_delay_seconds=0.01
    ) as running:
        yield running


def twilio_steady(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver, **settings: str
) -> tuple[Harness, Dispatcher, LocalRateLimiter]:
    sandbox.reset()
    receiver.clear()
    harness = Harness(
        make_settings(
            database_url,
            TWILIO_ACCOUNT_SID="AC" + "1" * 32,
            TWILIO_FROM_NUMBER=SENDER,
            STEADY_PUBLIC_URL=receiver.url,
            **settings,
        )
    )
    harness.runtime.providers["sms"] = TwilioSmsProvider(
        account_sid="AC" + "1" * 32,
        auth_token=TEST_TWILIO_TOKEN,
        from_number=SENDER,
        api_url=sandbox.url,
        timeout_seconds=2.0,
    )
    limiter = LocalRateLimiter()
    dispatcher = Dispatcher(
        harness.settings, harness.runtime.sessions, harness.runtime.providers, limiter=limiter
    )
    return harness, dispatcher, limiter


def statuses(harness: Harness, ids: list[int]) -> list[str]:
    with harness.runtime.sessions() as session:
        rows = session.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))
        found = dict(rows.all())
    return [found[i] for i in ids]


def test_a_spent_day_holds_nudges_but_a_confirmation_still_goes(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    harness, dispatcher, limiter = twilio_steady(
        database_url, sandbox, receiver, STEADY_SMS_SEGMENTS_PER_DAY="10"
    )
    sender = dispatcher.pacer.limits["sms"].sender
    now = datetime.now(UTC)
    phones = [f"+1202555{index:04d}" for index in range(12)]
    nudges = plan_welcome_nudges(harness.settings, phones, now, midday_zone(now))
    nudge_allowance = int(10 * NUDGE_SHARE)

    dispatcher.run_batch(now)

    sent_bodies = [str(message["body"]) for message in sandbox.messages("twilio")]
    spent = sum(count_segments(body) for body in sent_bodies)
    per_nudge = count_segments(sent_bodies[0])
    assert len(sent_bodies) == nudge_allowance // per_nudge >= 1
    assert spent <= nudge_allowance < spent + per_nudge, "sent until the nudges' share ran out"
    assert limiter.used_today(sender) == spent
    assert statuses(harness, nudges).count("sent") == len(sent_bodies)
    # The rest stay scheduled (they expire with their window, never go late), and
    # the next pass does not claim them at all.
    dispatcher.run_batch(now)
    assert statuses(harness, nudges).count("scheduled") == len(nudges) - len(sent_bodies)
    # A signup's confirmation (priority 0) still goes: the last tenth is kept for it.
    response = harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    assert response.status_code == 202
    dispatcher.run_batch(datetime.now(UTC))
    assert [message["to"] for message in sandbox.messages("twilio")][-1] == PHONE
    assert statuses(harness, nudges).count("scheduled") == len(nudges) - len(sent_bodies)
    assert limiter.used_today(sender) > spent


def test_a_twiml_reply_is_charged_to_the_sender_after_it_went(sqlite_url: str) -> None:
    harness = Harness(
        make_settings(
            sqlite_url,
            TWILIO_ACCOUNT_SID="AC" + "1" * 32,
            TWILIO_FROM_NUMBER=SENDER,
            STEADY_SMS_SEGMENTS_PER_DAY="100",
        )
    )
    charger: ReplyCharger = harness.client.app.state.steady.reply_budget  # type: ignore[attr-defined]
    assert charger.limit is not None
    assert charger.limiter is not None
    before = charger.limiter.used_today(charger.limit.sender)
    response = harness.text_in("+12025550199", "HELP")
    assert response.status_code == 200
    reply = ElementTree.fromstring(response.text).findtext("Message")  # noqa: S314 - our own TwiML
    assert reply
    used = charger.limiter.used_today(charger.limit.sender) - before
    assert used == count_segments(reply) >= 1


# --- never late at the carrier --------------------------------------------------------------


def test_each_nudge_carries_the_seconds_left_in_its_window(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    harness, dispatcher, _ = twilio_steady(database_url, sandbox, receiver)
    zone = "America/Chicago"
    # 19:00 local: one hour of the window left, less than the nudge's 2 h grace.
    now = datetime(2026, 3, 2, 19, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    nudges = plan_welcome_nudges(harness.settings, ["+12025550101"], now, zone)
    dispatcher.run_batch(now)
    [sent] = sandbox.messages("twilio")
    assert sent["params"]["ValidityPeriod"] == "3600"
    assert statuses(harness, nudges) == ["sent"]
    # Mid-morning the nudge's own expiry (2 h after it was due) comes first.
    sandbox.reset()
    morning = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    more = plan_welcome_nudges(harness.settings, ["+12025550102"], morning, zone)
    dispatcher.run_batch(morning + timedelta(minutes=30))
    [later] = sandbox.messages("twilio")
    assert later["params"]["ValidityPeriod"] == str(90 * 60)
    assert statuses(harness, more) == ["sent"]


def test_a_confirmation_keeps_twilios_default_validity(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    harness, dispatcher, _ = twilio_steady(database_url, sandbox, receiver)
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    dispatcher.run_batch(harness.now)
    [confirmation] = sandbox.messages("twilio")
    assert "ValidityPeriod" not in confirmation["params"]


def test_a_nudge_with_under_a_second_left_is_expired_not_sent(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    harness, dispatcher, _ = twilio_steady(database_url, sandbox, receiver)
    zone = "America/Chicago"
    closing = datetime(2026, 3, 2, 20, 0, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    nudges = plan_welcome_nudges(
        harness.settings, ["+12025550103"], closing - timedelta(minutes=5), zone
    )
    dispatcher.run_batch(closing - timedelta(milliseconds=400))
    assert statuses(harness, nudges) == ["expired"]
    assert sandbox.messages("twilio") == []


def test_30036_from_the_carrier_makes_the_message_expired(
    database_url: str, sandbox: SandboxServer, receiver: WebhookReceiver
) -> None:
    harness, dispatcher, _ = twilio_steady(database_url, sandbox, receiver)
    now = datetime.now(UTC)
    phone = "+12025550104"
    sandbox.add_fault(match_to=phone, expire=True)
    nudges = plan_welcome_nudges(harness.settings, [phone], now, midday_zone(now))
    dispatcher.run_batch(now)
    [sent] = sandbox.messages("twilio")
    assert 1 <= int(sent["params"]["ValidityPeriod"]) <= 36_000
    [callback] = receiver.wait_for(lambda r: r.path.startswith(STATUS_PATH), 1)
    assert (callback.form()["MessageStatus"], callback.form()["ErrorCode"]) == ("failed", "30036")
    response = harness.client.post(
        callback.path,
        content=callback.body,
        headers={
            "Content-Type": str(callback.header("Content-Type")),
            "X-Twilio-Signature": str(callback.header("X-Twilio-Signature")),
        },
    )
    assert response.status_code == 200
    assert statuses(harness, nudges) == ["expired"]


def test_the_sandbox_refuses_a_validity_period_out_of_twilios_range(
    sandbox: SandboxServer,
) -> None:
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    client = Client("AC" + "1" * 32, TEST_TWILIO_TOKEN)
    client.api.base_url = sandbox.url
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=PHONE, from_=SENDER, body="hi", validity_period=36_001)
    assert refused.value.code == 21624
    created = client.messages.create(to=PHONE, from_=SENDER, body="hi", validity_period=36_000)
    assert created.sid.startswith("SM")


def test_30036_is_expired_and_says_nothing_about_the_number() -> None:
    from service.providers.twilio.codes import cause_of, delivery_status

    assert delivery_status("failed", "30036") == "expired"
    assert delivery_status("undelivered", "30036") == "expired"
    assert delivery_status("failed", "30008") == "failed"
    assert delivery_status("delivered", None) == "delivered"
    assert cause_of("30036") is None  # our deadline, not the sender's compliance (3003x)
    cause = cause_of("30034")
    assert cause is not None
    assert cause.reason == "sender_blocked"
