"""The machine's ceiling for the sync `twilio` SDK, measured in the same run as dispatch.

PERFORMANCE.md: on this kind of machine the real SDK's `client.messages.create`
peaks with 2 processes × 4 threads against a loopback stand-in (2,830–3,260/s
there), with no database and nothing else per message. `steady bench` measures
that figure again beside Steady's dispatch, against the same stand-in, so the
ratio (dispatch ÷ ceiling) compares two numbers taken minutes apart on the same
machine rather than figures from different days.

Each process is spawned clean (no inherited state), builds one SDK client per
thread (the SDK's `requests` session keeps its connection alive, as Steady's
provider does), waits at a barrier with the others, then sends its share.
The rate is all messages over the span from the first start to the last finish.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.devtools.bench.world import BenchWorld

DEFAULT_PROCESSES = 2
DEFAULT_THREADS = 4
# About the length of a Steady nudge: one GSM-7 segment.
BODY = (
    "Steady: a short walk outside counts. Ten minutes, no phone in hand. "
    "Reply DONE when you have, or STOP to end."
)


def _client(standin: str, account_sid: str, auth_token: str) -> Any:
    from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]

    client = Client(account_sid, auth_token)
    client.edge = None
    client.region = None
    client.api.base_url = standin.rstrip("/")
    return client


def _process(
    standin: str,
    account_sid: str,
    auth_token: str,
    first: int,
    count: int,
    threads: int,
    ready: Any,
    results: Any,
) -> None:
    """One process: `threads` threads share `count` creates; reports (start, end, sent)."""
    clients = [_client(standin, account_sid, auth_token) for _ in range(threads)]
    shares = [range(first + i, first + count, threads) for i in range(threads)]
    sent = [0] * threads

    def run(index: int) -> None:
        messages = clients[index].messages
        for number in shares[index]:
            messages.create(to=f"+1{3_000_000_000 + number}", from_="+15005550006", body=BODY)
            sent[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    ready.wait(timeout=60)
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((started, time.monotonic(), sum(sent)))


def measure_ceiling(
    standin: str,
    account_sid: str,
    auth_token: str,
    messages: int,
    *,
    processes: int = DEFAULT_PROCESSES,
    threads: int = DEFAULT_THREADS,
) -> dict[str, Any]:
    """`messages` creates from `processes` × `threads`; the rate from first start to last end."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes)
    results = context.Queue()
    per_process = messages // processes
    workers = [
        context.Process(
            target=_process,
            args=(
                standin,
                account_sid,
                auth_token,
                index * per_process,
                per_process if index < processes - 1 else messages - index * per_process,
                threads,
                ready,
                results,
            ),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans: list[tuple[float, float, int]] = []
    while len(spans) < processes:
        try:
            spans.append(results.get(timeout=1.0))
        except queue.Empty:
            # A process that died never reports: fail now rather than wait for it.
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"bench: a ceiling process failed (exit {dead[0]})") from None
    for worker in workers:
        worker.join(timeout=30)
    started = min(start for start, _, _ in spans)
    ended = max(end for _, end, _ in spans)
    sent = sum(count for _, _, count in spans)
    elapsed = ended - started
    return {
        "messages": sent,
        "processes": processes,
        "threads_per_process": threads,
        "seconds": round(elapsed, 2),
        "per_s": round(sent / elapsed) if elapsed else None,
    }


def phase(world: BenchWorld, messages: int) -> dict[str, Any]:
    """The bench phase: the ceiling against the run's stand-in, checked by its counts."""
    world.progress(f"ceiling: {messages:,} creates, raw twilio SDK, 2 processes × 4 threads")
    world.reset_standin()
    token = world.settings.twilio_auth_token
    figures = measure_ceiling(
        world.standin,
        str(world.settings.twilio_account_sid),
        token.get_secret_value() if token else "",
        messages,
    )
    counts = world.counts()
    figures["check"] = {
        "accepted": counts["accepted"],
        "ok": counts["accepted"] == messages and counts["duplicates"] == 0,
    }
    return figures


def best(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The higher of two ceiling runs, with both rates and both checks."""
    return {
        **max(before, after, key=lambda figures: figures["per_s"] or 0),
        "runs_per_s": [before["per_s"], after["per_s"]],
        "check": {
            "accepted": before["check"]["accepted"] + after["check"]["accepted"],
            "ok": before["check"]["ok"] and after["check"]["ok"],
        },
    }
