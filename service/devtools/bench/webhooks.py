"""The webhook phase: signed Twilio status callbacks into `steady web`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from service.devtools.bench.scratch import tree_cpu_seconds, wait_until_idle
from service.devtools.bench.world import BenchWorld
from service.devtools.servers import wait_until
from service.messages.compose import status_callback_url
from service.storage.models import Channel, DeliveryEvent, Message, MessageStatus


def webhooks(world: BenchWorld, count: int, web_port: int) -> dict[str, Any]:
    from twilio.request_validator import RequestValidator

    world.processes.stop(world.worker_pid)  # the pool is idle now; give the web its CPU
    world.progress(f"webhooks: {count:,} signed status callbacks to steady web --workers 2")
    web = world.processes.steady("web", "web", "--port", str(web_port), "--workers", "2")
    base = f"http://127.0.0.1:{web_port}"
    wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30, "steady web")
    # Timed from when the workers are at rest: their start-up work is not ingest.
    settled = wait_until_idle(web)
    with world.sessions() as session:
        rows = session.execute(
            select(Message.id, Message.provider_id, Channel.address)
            .join(Channel, Channel.id == Message.channel_id)
            .where(Message.status == MessageStatus.SENT, Message.provider_id.is_not(None))
            .order_by(Message.id)
            .limit(count)
        ).all()
    token = world.settings.twilio_auth_token
    validator = RequestValidator(token.get_secret_value() if token else "")
    requests: list[tuple[str, dict[str, str], str]] = []
    for message_id, sid, address in rows:
        url = status_callback_url(world.settings, message_id)
        form = {
            "AccountSid": str(world.settings.twilio_account_sid),
            "ApiVersion": "2010-04-01",
            "From": str(world.settings.twilio_from_number),
            "MessageSid": str(sid),
            "MessageStatus": "delivered",
            "SmsSid": str(sid),
            "SmsStatus": "delivered",
            "To": address,
        }
        requests.append((url, form, validator.compute_signature(url, form)))
    cpu_before = tree_cpu_seconds(web)
    started = time.monotonic()
    statuses = asyncio.run(_post_all(requests, base, world.settings.public_url))
    elapsed = time.monotonic() - started
    web_cpu = tree_cpu_seconds(web) - cpu_before
    world.processes.stop(web)
    with world.sessions() as session:
        persisted = session.scalar(select(func.count()).select_from(DeliveryEvent)) or 0
        delivered = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status == MessageStatus.DELIVERED)
        )
    return {
        "callbacks": len(requests),
        "answered_200": statuses.get(200, 0),
        "other_statuses": {str(k): v for k, v in statuses.items() if k != 200},
        "persisted": persisted,
        "messages_delivered": delivered,
        "seconds": round(elapsed, 2),
        "web_start_settled_s": round(settled, 1),
        "per_s": round(persisted / elapsed) if elapsed else None,
        "web_cpu_ms_per_callback": round(1000 * web_cpu / len(requests), 3) if requests else None,
    }


async def _post_all(
    requests: list[tuple[str, dict[str, str], str]], base: str, public_url: str
) -> dict[int, int]:
    """POST every callback with 64 connections in flight; counts answers by status."""
    import aiohttp

    statuses: dict[int, int] = {}
    queue: asyncio.Queue[tuple[str, dict[str, str], str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            url, form, signature = queue.get_nowait()
            async with session.post(
                base + url[len(public_url) :],
                data=form,
                headers={"X-Twilio-Signature": signature},
            ) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(64)))
    return statuses
