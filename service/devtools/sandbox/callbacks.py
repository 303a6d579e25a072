"""The sandbox's outgoing side: status callbacks and event webhooks, off the request path.

Accepting a message only puts a job on a bounded queue; sender tasks sharing one
HTTP client session post the job's stages in order ("sent" before "delivered"),
each no sooner than `delay × (stage number)` after acceptance. A full queue drops
the job and counts it, so a slow or absent receiver costs neither request latency
nor unbounded memory.

The client is aiohttp's, not httpx's: measured on loopback, an httpx.AsyncClient
POST cost ~800 µs of CPU against ~70 µs for aiohttp, and at two callbacks per SMS
that difference is the sandbox's whole throughput. aiohttp is already installed
as a dependency of `twilio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

logger = logging.getLogger("steady.sandbox")

CALLBACK_QUEUE_SIZE = 100_000
CALLBACK_WORKERS = 32  # concurrent posts: enough to hide a receiver's few ms of latency
CALLBACK_ATTEMPTS = 3  # the first try and two retries, then the callback is dropped
CALLBACK_RETRY_BACKOFF_SECONDS = (0.2, 1.0)
CALLBACK_HTTP_TIMEOUT_SECONDS = 5.0
HTTP_SERVER_ERROR = 500
# What a post can fail with short of an HTTP answer.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass(slots=True)
class OutgoingPost:
    """One HTTP POST the sandbox makes as Twilio or SendGrid would."""

    url: str
    content: bytes
    headers: dict[str, str]


# A stage runs when due: it updates the sandbox's view of the message and returns
# the request to post (built then, so timestamps and signatures are fresh), or None.
Stage = Callable[[], OutgoingPost | None]


@dataclass(slots=True)
class _Job:
    accepted_at: float
    stages: Sequence[Stage]


class CallbackSender:
    """Posts callback jobs in the background; owns the shared HTTP client."""

    def __init__(
        self,
        counts: Counter[str],
        *,
        delay_seconds: float,
        queue_size: int = CALLBACK_QUEUE_SIZE,
        workers: int = CALLBACK_WORKERS,
    ) -> None:
        self._counts = counts
        self._delay = delay_seconds
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_size)
        self._worker_count = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CALLBACK_HTTP_TIMEOUT_SECONDS),
            connector=aiohttp.TCPConnector(limit=self._worker_count * 2),
            trust_env=False,  # callbacks go where they are told, never through a proxy
        )
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._worker_count)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, stages: Sequence[Stage]) -> bool:
        """Queue the stages of one message; False (and counted) when the queue is full."""
        job = _Job(accepted_at=asyncio.get_running_loop().time(), stages=stages)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._counts["callbacks_dropped"] += len(stages)
            return False
        return True

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            try:
                for number, stage in enumerate(job.stages, start=1):
                    wait = job.accepted_at + self._delay * number - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    post = stage()
                    if post is not None:
                        await self.deliver(post)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad job must not take a sender task with it.
                logger.exception("sandbox callback job failed")
                self._counts["callbacks_failed"] += 1
            finally:
                self._queue.task_done()

    async def exchange(self, post: OutgoingPost) -> tuple[int, str]:
        """POST once; the answer's status and text. Raises one of `TRANSPORT_ERRORS`."""
        if self._session is None:
            raise RuntimeError("the callback sender is not running")
        async with self._session.post(post.url, data=post.content, headers=post.headers) as answer:
            return answer.status, await answer.text()

    async def deliver(self, post: OutgoingPost) -> None:
        """POST with a couple of retries on network errors and 5xx, then give up."""
        target = urlsplit(post.url).path
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                status, _ = await self.exchange(post)
            except TRANSPORT_ERRORS as exc:
                problem = type(exc).__name__
            else:
                if status < HTTP_SERVER_ERROR:
                    self._counts["callbacks_posted"] += 1
                    if status >= 400:
                        self._counts["callbacks_refused"] += 1
                        logger.warning("sandbox callback to %s refused: HTTP %s", target, status)
                    return
                problem = f"HTTP {status}"
            if attempt < len(CALLBACK_RETRY_BACKOFF_SECONDS):
                await asyncio.sleep(CALLBACK_RETRY_BACKOFF_SECONDS[attempt])
        self._counts["callbacks_failed"] += 1
        logger.warning(
            "sandbox callback to %s dropped after %d attempts: %s",
            target,
            CALLBACK_ATTEMPTS,
            problem,
        )
