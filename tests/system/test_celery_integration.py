"""End to end with real processes: `steady web`, a Celery worker and beat on the
real PostgreSQL and Redis, sending through the real Twilio SDK to the sandbox,
which calls back with signed status callbacks and signed inbound texts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.devtools.sandbox.server import SandboxServer
from service.devtools.servers import free_port, wait_until
from service.pacing.window import midday_zone
from service.storage.db import session_factory
from service.storage.models import Channel, Message
from tests.support.processes import steady_process, steady_web

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TWILIO_TOKEN = "integration-auth-token"
PHONE = "+12125550199"


def test_signup_yes_and_welcome_through_real_worker_and_sandbox(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    web_port = free_port()
    public_url = f"http://127.0.0.1:{web_port}"
    with SandboxServer(public_url=public_url, auth_token=TWILIO_TOKEN) as sandbox:
        env = {
            "STEADY_DATABASE_URL": postgres_url,
            "STEADY_BROKER_URL": redis_url,
            "STEADY_PUBLIC_URL": public_url,
            "STEADY_SECRET_KEY": "integration-secret-key-0123456789abcdef",
            "STEADY_TICK_SECONDS": "1",
            "STEADY_SEND_SPREAD_MINUTES": "0",  # welcomes due at once, unspread
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "STEADY_TWILIO_API_URL": sandbox.url,
            "SENDGRID_API_KEY": "",
        }
        with (
            steady_web(env, web_port, tmp_path / "web.log") as web_url,
            steady_process(["worker", "--concurrency", "2"], env, tmp_path / "worker.log"),
            # Two beats on purpose: claims in the database must make the second harmless.
            steady_process(
                ["beat", "--schedule", str(tmp_path / "beat1")], env, tmp_path / "beat1.log"
            ),
            steady_process(
                ["beat", "--schedule", str(tmp_path / "beat2")], env, tmp_path / "beat2.log"
            ),
        ):
            response = httpx.post(
                f"{web_url}/subscribe",
                json={"phone": PHONE, "consent": True, "timezone": midday_zone(datetime.now(UTC))},
            )
            assert response.status_code == 202

            wait_until(lambda: len(sandbox.messages("twilio")) >= 1, 30, "the confirmation SMS")
            confirmation = sandbox.messages("twilio")[0]
            assert confirmation["to"] == PHONE
            assert "YES" in confirmation["body"]

            exchange = sandbox.inbound(PHONE, "Yes")
            assert exchange["status"] == 200
            assert "<Message>" in exchange["twiml"]

            wait_until(lambda: len(sandbox.messages("twilio")) >= 2, 45, "the welcome nudge")

            sessions = session_factory(postgres_url)

            def all_delivered() -> bool:
                with sessions() as session:
                    statuses = session.scalars(
                        select(Message.status).where(Message.provider != "twiml")
                    ).all()
                return len(statuses) == 2 and set(statuses) == {"delivered"}

            wait_until(all_delivered, 30, "signed status callbacks to mark both delivered")
            # Let the two beats and the worker run a few more rounds: nothing more goes.
            time.sleep(4)
        sent = sandbox.messages("twilio")
    assert len(sent) == 2, [m["body"][:40] for m in sent]
    with session_factory(postgres_url)() as session:
        channel = session.scalar(select(Channel))
        assert channel is not None
        assert channel.status == "active"
        rows = session.execute(
            select(Message.kind, Message.status, Message.scheduled_for, Message.sent_at).order_by(
                Message.id
            )
        ).all()
    assert [(kind, status) for kind, status, _, _ in rows[:3]] == [
        ("confirm", "delivered"),
        ("reply", "sent"),
        ("welcome", "delivered"),
    ]
    # The next nudge is already planned as a row, and keeps the 3-hour spacing.
    assert [status for _, status, _, _ in rows[3:]] == ["scheduled"]
    welcome_sent = rows[2].sent_at
    assert rows[3].scheduled_for - welcome_sent >= timedelta(hours=3)
