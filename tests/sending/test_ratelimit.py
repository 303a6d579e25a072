"""Provider rate limits per sender: the limiter in process and through real Redis,
and real `steady worker` processes pacing a backlog into the sandbox, checked
against the sandbox's own log of when it accepted each message."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import structlog

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import free_port, wait_until
from service.pacing.window import midday_zone
from service.sending.ratelimit import (
    MICROSECONDS,
    LocalRateLimiter,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    gcra_reserve,
    interval_us,
)
from tests.support.processes import steady_process
from tests.support.world import make_settings, plan_welcome_nudges

# The bound: over any window the sandbox never sees more than the limit plus 5%.
ALLOWED_EXCESS = 0.05


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any half-open window [t, t + window) that starts at an event."""
    times = sorted(times)
    best = 0
    end = 0
    for start, at in enumerate(times):
        while end < len(times) and times[end] < at + window:
            end += 1
        best = max(best, end - start)
    return best


def allowed_in_window(rate: float, window: float) -> int:
    return int(rate * window * (1 + ALLOWED_EXCESS))


def send_times(limiter: RateLimiter, sender: str, rate: float, count: int) -> list[float]:
    """Take `count` slots one after another, sleeping for each: when each send would go."""
    times = []
    for _ in range(count):
        reservation = limiter.reserve(sender, rate, max_wait=60.0)
        assert reservation.granted
        time.sleep(reservation.wait)
        times.append(time.monotonic())
    return times


def in_threads(callers: int, work: Callable[[], list[float]]) -> list[float]:
    results: list[list[float]] = []
    lock = threading.Lock()

    def run() -> None:
        times = work()
        with lock:
            results.append(times)

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == callers
    return [at for times in results for at in times]


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted after."""
    prefix = f"test:ratelimit:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- the arithmetic --------------------------------------------------------------------


def test_slots_are_one_interval_apart_and_an_idle_sender_goes_at_once() -> None:
    interval = interval_us(4.0)  # 250 ms
    first, tat = gcra_reserve(0, 1_000_000, interval, max_wait_us=10_000_000)
    second, tat = gcra_reserve(tat, 1_000_000, interval, max_wait_us=10_000_000)
    third, tat = gcra_reserve(tat, 1_100_000, interval, max_wait_us=10_000_000)
    assert [r.wait for r in (first, second, third)] == [0.0, 0.25, 0.4]
    assert all(r.granted for r in (first, second, third))
    later, _ = gcra_reserve(tat, 5_000_000, interval, max_wait_us=0)
    assert (later.granted, later.wait) == (True, 0.0), "idle time is not saved up as a burst"


def test_a_refused_reservation_leaves_the_schedule_as_it_was() -> None:
    interval = interval_us(1.0)
    _, tat = gcra_reserve(0, 0, interval, max_wait_us=0)
    _, tat = gcra_reserve(tat, 0, interval, max_wait_us=5 * MICROSECONDS)
    refused, unchanged = gcra_reserve(tat, 0, interval, max_wait_us=MICROSECONDS)
    assert (refused.granted, refused.wait, unchanged) == (False, 2.0, tat)


def test_intervals_round_up_so_a_rate_is_never_exceeded() -> None:
    assert interval_us(3.0) == 333_334
    assert interval_us(1.0) == MICROSECONDS
    with pytest.raises(ValueError, match="positive"):
        interval_us(0)


# --- in process --------------------------------------------------------------------------


def test_threads_sharing_a_local_limiter_keep_to_the_rate_over_every_window() -> None:
    limiter = LocalRateLimiter()
    rate, callers, each = 20.0, 4, 15
    started = time.monotonic()
    times = in_threads(callers, lambda: send_times(limiter, "sms:twilio:+1", rate, each))
    assert len(times) == callers * each
    assert max_in_window(times, 1.0) <= allowed_in_window(rate, 1.0) + 1
    assert max_in_window(times, 2.0) <= allowed_in_window(rate, 2.0)
    # The waits are right: 60 sends at 20/s take 59 intervals, and not much more.
    elapsed = max(times) - started
    assert (callers * each - 1) / rate <= elapsed < (callers * each - 1) / rate + 1.0


def test_senders_are_limited_apart() -> None:
    limiter = LocalRateLimiter()
    assert limiter.reserve("sms:twilio:+15550001", 1.0, 0).granted
    assert limiter.reserve("sms:twilio:+15550002", 1.0, 0).granted
    assert not limiter.reserve("sms:twilio:+15550001", 1.0, 0.5).granted


# --- through Redis -----------------------------------------------------------------------


_START_LINE: threading.Barrier | None = None


def _meet_at(barrier: threading.Barrier) -> None:
    """Each pool process keeps the shared barrier, so that all start sending together."""
    global _START_LINE
    _START_LINE = barrier


def _redis_sends(url: str, prefix: str, sender: str, rate: float, count: int) -> list[float]:
    """Run in a separate process: its own client, the shared schedule."""
    assert _START_LINE is not None
    _START_LINE.wait(timeout=120)
    limiter = RedisRateLimiter.from_url(url, prefix)
    try:
        return send_times(limiter, sender, rate, count)
    finally:
        limiter.close()


@pytest.mark.redis
def test_processes_sharing_redis_keep_to_the_rate_over_every_window(
    redis_url: str, redis_prefix: str
) -> None:
    rate, workers, each = 20.0, 3, 20
    context = multiprocessing.get_context("spawn")
    # The processes wait for each other before the first send, however long spawning them
    # takes on a busy machine, so that they really compete for the shared schedule.
    barrier = context.Barrier(workers)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_meet_at, initargs=(barrier,)
    ) as pool:
        futures = [
            pool.submit(_redis_sends, redis_url, redis_prefix, "sms:twilio:+1", rate, each)
            for _ in range(workers)
        ]
        per_process = [future.result(timeout=180) for future in futures]
    times = [at for sends in per_process for at in sends]
    # CLOCK_MONOTONIC is one clock for every process on the machine.
    assert len(times) == workers * each
    assert max_in_window(times, 1.0) <= allowed_in_window(rate, 1.0) + 1
    assert max_in_window(times, 2.0) <= allowed_in_window(rate, 2.0)
    # They sent side by side: each process's sends overlap every other's.
    assert max(min(sends) for sends in per_process) < min(max(sends) for sends in per_process)
    first_send = min(times)
    assert max(times) - first_send >= (workers * each - 1) / rate - 0.05


@pytest.mark.redis
def test_redis_waits_are_exact_and_refusals_take_no_slot(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, redis_prefix)
    waits = [limiter.reserve("email:sendgrid:a@example.org", 10.0, 1.0) for _ in range(4)]
    refused = limiter.reserve("email:sendgrid:a@example.org", 10.0, 0.05)
    after = limiter.reserve("email:sendgrid:a@example.org", 10.0, 1.0)
    limiter.close()
    assert [r.granted for r in waits] == [True] * 4
    # Slots 100 ms apart; the calls themselves take a little of each wait.
    for number, reservation in enumerate(waits):
        assert number * 0.1 - 0.05 < reservation.wait <= number * 0.1
    assert not refused.granted
    assert 0.35 < refused.wait <= 0.4
    assert 0.35 < after.wait <= 0.4, "the refused call did not move the schedule"


@pytest.mark.redis
def test_an_idle_senders_key_expires(redis_url: str, redis_prefix: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, redis_prefix)
    limiter.reserve("sms:twilio:+1", 1.0, 0)
    limiter.close()
    client = redis.Redis.from_url(redis_url)
    ttl_ms = client.pttl(redis_prefix + "sms:twilio:+1")
    client.close()
    assert 0 < ttl_ms <= 62_000


def test_unreachable_redis_raises_and_warns_once_per_outage() -> None:
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "test:")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(RateLimiterUnavailable):
                limiter.reserve("sms:twilio:+1", 1.0, 5.0)
    assert [entry["event"] for entry in logs] == ["rate_limiter_unavailable"]
    limiter.close()


# --- real workers, the sandbox's log -----------------------------------------------------


def pace_backlog_through_workers(
    postgres_url: str, redis_url: str, tmp_path: Path, *, rate: float, count: int
) -> list[float]:
    """`count` due nudges sent by two `steady worker` processes at `rate`; the accept times."""
    now = datetime.now(UTC)
    phones = [f"+1202555{index:04d}" for index in range(count)]
    plan_welcome_nudges(make_settings(postgres_url), phones, now, midday_zone(now))
    # A sender of this test's own: its limiter key is this test's alone.
    sender = f"+1500555{uuid.uuid4().int % 10_000:04d}"
    with SandboxServer(public_url="http://127.0.0.1:9", callbacks=False) as sandbox:
        env = {
            "STEADY_DATABASE_URL": postgres_url,
            "STEADY_BROKER_URL": redis_url,
            "STEADY_PUBLIC_URL": "http://127.0.0.1:9",
            "STEADY_SECRET_KEY": "ratelimit-secret-key-0123456789abcdef",
            "STEADY_TICK_SECONDS": "1",
            "STEADY_SMS_RATE_PER_SECOND": str(rate),
            "TWILIO_ACCOUNT_SID": "AC" + "5" * 32,
            "TWILIO_AUTH_TOKEN": "ratelimit-auth-token",
            "TWILIO_FROM_NUMBER": sender,
            "STEADY_TWILIO_API_URL": sandbox.url,
            "SENDGRID_API_KEY": "",
        }
        logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
        with (
            steady_process(["worker", "--concurrency", "1"], env, logs[0]),
            steady_process(["worker", "--concurrency", "1"], env, logs[1]),
            steady_process(["beat", "--schedule", str(tmp_path / "beat")], env, tmp_path / "b"),
        ):
            wait_until(
                lambda: len(sandbox.messages("twilio")) >= count,
                count / rate * 2 + 60,
                f"{count} messages at {rate}/s",
                interval=1.0,
            )
            time.sleep(1)  # anything beyond the backlog would show now
        accepted = sandbox.messages("twilio")
    assert len(accepted) == count
    assert {message["to"] for message in accepted} == set(phones)
    # Both workers sent part of the backlog: the limit held across processes.
    for log in logs:
        assert "message_sent" in log.read_text(errors="replace"), f"{log.name} sent nothing"
    return [float(message["received_at"]) for message in accepted]


def check_windows(times: list[float], rate: float, window: float) -> None:
    busiest = max_in_window(times, window)
    print(f"\nbusiest {window:.0f} s window: {busiest} (limit {rate * window:.0f})")
    assert busiest <= allowed_in_window(rate, window)
    # Not slower than it need be either: the backlog went at about the limit.
    span = max(times) - min(times)
    print(f"{len(times)} messages in {span:.1f} s: {(len(times) - 1) / span:.2f}/s")
    assert span >= (len(times) - 1) / rate * (1 - ALLOWED_EXCESS)
    assert span <= (len(times) - 1) / rate * 1.5 + 5


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_workers_keep_a_backlog_to_the_limit_plus_5_percent_in_every_10_seconds(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    # The limiter spaces slots exactly (at most rate × W + 1 in W seconds); what
    # the sandbox sees also carries each send's scheduling delay after its slot,
    # so the short windows run at 10/s, where +5% leaves room for 0.4 s of it.
    times = pace_backlog_through_workers(postgres_url, redis_url, tmp_path, rate=10, count=150)
    check_windows(times, 10, 10.0)


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_workers_never_pass_the_limit_plus_5_percent_in_any_minute(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    times = pace_backlog_through_workers(postgres_url, redis_url, tmp_path, rate=5, count=400)
    assert max(times) - min(times) >= 75, "the run covers more than a minute"
    check_windows(times, 5, 60.0)
