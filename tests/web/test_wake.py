"""Confirmations and imports wake the planner at once (issue 13: start at once), by task
name over the broker with Celery, through the ticker's event in `steady run`."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli.main import app as cli
from service.sending.wake import PLAN_TASK, ThreadWaker
from service.web.app import create_app
from tests.support.world import Harness, make_settings

PHONE = "+12125550142"


def harness_with_waker(database_url: str) -> tuple[Harness, ThreadWaker]:
    harness = Harness(make_settings(database_url))
    waker = ThreadWaker()
    app = create_app(
        harness.settings, sessions=harness.runtime.sessions, waker=waker, clock=lambda: harness.now
    )
    harness.client = TestClient(app)
    return harness, waker


def test_a_yes_by_sms_wakes_the_planner_and_other_texts_do_not(database_url: str) -> None:
    harness, waker = harness_with_waker(database_url)
    harness.client.post("/subscribe", json={"phone": PHONE, "consent": True})
    harness.tick()
    waker.event.clear()

    assert harness.text_in(PHONE, "HELP").status_code == 200
    assert not waker.event.is_set(), "HELP makes no one plannable"
    assert harness.text_in(PHONE, "Yes").status_code == 200
    assert waker.event.is_set()


def test_confirming_by_the_email_link_wakes_the_planner(database_url: str) -> None:
    harness, waker = harness_with_waker(database_url)
    harness.client.post("/subscribe", json={"email": "sam@example.com", "consent": True})
    harness.tick()
    link = re.search(r"https://steady\.example\.org(/confirm/[\w.\-]+)", harness.email.sent[0].body)
    assert link is not None
    waker.event.clear()
    assert harness.client.get(link.group(1)).status_code == 200
    assert not waker.event.is_set(), "looking at the page confirms nothing"
    assert harness.client.post(link.group(1)).status_code == 200
    assert waker.event.is_set()
    # …and the woken pass plans the welcome now.
    report = harness.tick(harness.now + timedelta(seconds=1))
    assert [plan.kind for _, plan, _ in report.plan.planned] == ["welcome"]


@pytest.mark.redis
def test_an_import_asks_a_worker_to_plan_and_dispatch(
    sqlite_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("STEADY_BROKER_URL", redis_url)
    path = tmp_path / "people.csv"
    path.write_text("phone,email,timezone\n+12125550142,,\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["subscribers", "import", str(path)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    queued = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange("celery", 0, -1)]
    assert [message["headers"]["task"] for message in queued] == [PLAN_TASK]
    args, kwargs, _ = json.loads(base64.b64decode(queued[0]["body"]))
    assert (args, kwargs) == ([], {"then_dispatch": True})
