"""Group commit for status callbacks: many concurrent requests, one transaction.

A provider posts a status callback for every message it handles, so at full
speed they arrive by the thousand per second. Each still gets its answer only
after its report is committed (a 200 tells Twilio to forget it), but the
reports that arrive while one transaction is being written are written together
in the next one, like PostgreSQL's own group commit: one request alone goes
straight through; under load a batch costs a few statements instead of a few
per callback, and the event loop keeps accepting requests meanwhile because the
database work runs on this app's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 500


class GroupCommit(Generic[Item, Result]):
    """`await submit(item)` returns `apply([.., item, ..])`'s result for that item.

    `apply` runs one transaction for the whole batch on a single worker thread.
    If a batch fails, its items are retried one by one, so one bad report fails
    alone (its request gets a 500 and the provider retries it) and the others
    are still answered.
    """

    def __init__(
        self, apply: Callable[[Sequence[Item]], list[Result]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._apply = apply
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steady-ingest")

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return await future

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._thread, self._apply, items)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0][1], exc)
                    continue
                log.warning("ingest_batch_failed", size=len(batch), error=type(exc).__name__)
                for item, future in batch:
                    try:
                        (result,) = await loop.run_in_executor(self._thread, self._apply, [item])
                    except Exception as single:
                        _fail(future, single)
                    else:
                        _resolve(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _resolve(future, result)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


# A future is already done when its client went away and the request was cancelled.


def _resolve(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Result], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
