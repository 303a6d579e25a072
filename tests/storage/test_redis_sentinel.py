"""Redis Sentinel URLs: `sentinel://…;sentinel://…/DB?master_name=NAME` reaches the master
a real sentinel names, for redis-py (locks, rate limits) and for Celery's broker."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from service.devtools.servers import PrivateRedis, ServerUnavailable, free_port, wait_until
from service.sending.wake import PLAN_TASK, CeleryWaker
from service.storage.redis_url import (
    BadRedisURL,
    celery_broker,
    parse_sentinel_url,
    redis_client,
)


def test_a_sentinel_url_names_its_sentinels_master_and_database() -> None:
    url = "sentinel://:pw@10.0.0.1:26379;sentinel://10.0.0.2/3?master_name=steady"
    where = parse_sentinel_url(url)
    assert where.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    assert (where.master_name, where.db, where.password) == ("steady", 3, "pw")
    broker, options = celery_broker(url)
    assert broker == "sentinel://:pw@10.0.0.1:26379/3;sentinel://:pw@10.0.0.2:26379/3"
    assert options == {"master_name": "steady"}
    assert celery_broker("redis://localhost:6379/0") == ("redis://localhost:6379/0", {})


@pytest.mark.parametrize(
    "url", ["sentinel://10.0.0.1:26379", "sentinel://10.0.0.1;redis://x?master_name=a"]
)
def test_a_sentinel_url_without_a_master_name_or_of_mixed_schemes_is_refused(url: str) -> None:
    with pytest.raises(BadRedisURL):
        parse_sentinel_url(url)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[PrivateRedis, str]]:
    try:
        master = PrivateRedis(tmp_path / "master")
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    master.start()
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor steady 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds steady 5000\n"
    )
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import redis

        def knows_master() -> bool:
            try:
                with closing(redis.Redis(port=port, socket_timeout=1)) as client:
                    return client.sentinel_get_master_addr_by_name("steady") is not None  # type: ignore[no-untyped-call]
            except redis.RedisError:
                return False

        wait_until(knows_master, 30, "the sentinel to know its master")
        yield master, f"sentinel://127.0.0.1:{port}/2?master_name=steady"
    finally:
        process.terminate()
        process.wait(timeout=10)
        master.stop()


@pytest.mark.slow
def test_clients_and_wake_ups_reach_the_master_through_the_sentinel(
    sentinel: tuple[PrivateRedis, str],
) -> None:
    master, url = sentinel
    client = redis_client(url, socket_timeout=5, socket_connect_timeout=5)
    client.set("steady:sentinel-test", "1")
    with closing(master.client()) as direct:
        direct.execute_command("SELECT", 2)
        assert direct.get("steady:sentinel-test") == b"1"

    CeleryWaker(url).wake_planner(then_dispatch=True)
    import redis

    with closing(redis.Redis(port=master.port, db=2)) as direct:
        queued = [json.loads(raw) for raw in direct.lrange("celery", 0, -1)]
    assert [message["headers"]["task"] for message in queued] == [PLAN_TASK]
