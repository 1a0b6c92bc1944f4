"""Redis misbehaving under real replicas: a commit whose reply comes too late, a step that
loses a race, a Redis at maxmemory, a Redis turned read-only (a demoted primary)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from seqserve.service.state import redis_lua

from scripts.launch import RedisServer, ServerProcess, free_port
from tests.e2e.conftest import StartServer
from tests.e2e.replicas.proxy import RedisProxy
from tests.e2e.replicas.test_replicas import create, step
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e
SAVE_SHA = hashlib.sha1(redis_lua.SAVE.encode()).hexdigest().encode()
TOL = 1e-5


@pytest.fixture
def redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path / "redis", aof=False).start()
    yield server
    server.stop()


@pytest.fixture
def proxy(redis: RedisServer) -> Iterator[RedisProxy]:
    running = RedisProxy(redis.port).start()
    yield running
    running.stop()


def via(url: str, prefix: str = "rf") -> dict[str, str]:
    return {
        "SEQSERVE_STATE_STORE": "redis",
        "SEQSERVE_REDIS_URL": url,
        "SEQSERVE_REDIS_PREFIX": prefix,
    }


def unindexed(server: ServerProcess, sid: str, chunk: np.ndarray) -> httpx.Response:
    body = {"inputs": chunk.tolist()}
    return httpx.post(f"{server.url}/v1/sessions/{sid}/steps", json=body, timeout=30)


def session_step(server: ServerProcess, sid: str) -> int:
    return int(httpx.get(f"{server.url}/v1/sessions/{sid}").json()["step"])


def test_a_commit_whose_reply_comes_after_the_timeout_applies_once(
    redis: RedisServer, proxy: RedisProxy, start_server: StartServer, repo: Path
) -> None:
    """The client times out waiting for the commit's reply and runs the script again; the
    commit had happened, so the retry must answer "committed", not a conflict (409, which
    a V2 client gets as 400 and sends again: the input applied twice)."""
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(7, seed=11)
    replica = start_server(**via(proxy.url("?socket_timeout=0.5")))
    sid = create(replica)
    outputs = step(replica, sid, raw[:3], 0)["outputs"]  # the SAVE script is loaded now
    late = proxy.delay_reply(SAVE_SHA, delay_s=2.0)  # 4x the client's socket timeout
    answer = unindexed(replica, sid, raw[3:])
    assert late.reached.is_set()
    assert answer.status_code == 200, answer.text
    assert answer.json()["step"] == 7
    outputs += answer.json()["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)
    assert session_step(replica, sid) == 7  # applied once
    with redis.client() as admin:
        assert admin.hget(f"rf:s:{sid}", "rev") == b"2"  # two commits, not three


def test_an_unindexed_step_that_loses_a_race_gets_409_and_is_not_applied(
    redis: RedisServer, proxy: RedisProxy, start_server: StartServer, repo: Path
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(6, seed=12)
    slow = start_server(**via(proxy.url()))  # its commits pass through the proxy
    fast = start_server(**via(redis.url))
    sid = create(fast)
    held = proxy.hold_request(SAVE_SHA)
    answers: list[httpx.Response] = []
    loser = threading.Thread(target=lambda: answers.append(unindexed(slow, sid, raw[:2] + 50)))
    loser.start()
    try:
        assert held.reached.wait(20), "the slow replica never committed"
        won = unindexed(fast, sid, raw[:3])  # read and committed while the other's commit waits
        assert won.status_code == 200, won.text
    finally:
        held.release.set()
        loser.join(30)
    [lost] = answers
    assert lost.status_code == 409, lost.text
    assert lost.headers["content-type"] == "application/problem+json"
    assert lost.json()["current_step"] == 3
    outputs = won.json()["outputs"] + step(slow, sid, raw[3:], 3)["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=TOL)  # the loser left no trace


def _unavailable(response: httpx.Response, title: str) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body: dict[str, Any] = response.json()
    assert body["title"] == title
    return body


def test_a_full_redis_is_503_store_full_and_delete_still_frees(
    redis: RedisServer, start_server: StartServer
) -> None:
    replica = start_server(**via(redis.url))
    sids = [create(replica) for _ in range(2)]
    step(replica, sids[0], co2_like(2), 0)
    with redis.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", admin.info("memory")["used_memory"] // 2)
        try:
            full = httpx.post(f"{replica.url}/v1/sessions", json={"model": "diffed"})
            assert "full" in _unavailable(full, "State store full")["detail"]
            moved = httpx.post(
                f"{replica.url}/v1/sessions/{sids[0]}/steps",
                json={"inputs": co2_like(1).tolist(), "step": 2},
            )
            _unavailable(moved, "State store full")
            assert session_step(replica, sids[0]) == 2  # reads still work, nothing changed
            forecast = httpx.post(
                f"{replica.url}/v1/sessions/{sids[0]}/forecast", json={"horizon": 2}
            )
            assert forecast.status_code == 200, forecast.text
            assert httpx.get(f"{replica.url}/readyz").status_code == 200  # deletes free it
            for sid in sids:
                assert httpx.delete(f"{replica.url}/v1/sessions/{sid}").status_code == 204
                assert httpx.get(f"{replica.url}/v1/sessions/{sid}").status_code == 404
            assert admin.zcard("rf:live") == 0
            assert int(admin.get("rf:bytes") or 0) == 0
        finally:
            admin.config_set("maxmemory", 0)
    create(replica)


def test_a_read_only_redis_is_503_and_not_ready(
    redis: RedisServer, start_server: StartServer
) -> None:
    replica = start_server(**via(redis.url))
    sid = create(replica)
    with redis.client() as admin:
        admin.replicaof("127.0.0.1", free_port())  # a demoted primary: its master is away
        try:
            refused = httpx.post(f"{replica.url}/v1/sessions", json={"model": "diffed"})
            assert "read-only" in _unavailable(refused, "State store read-only")["detail"]
            moved = unindexed(replica, sid, co2_like(1))
            _unavailable(moved, "State store read-only")
            ready = httpx.get(f"{replica.url}/readyz")
            assert ready.status_code == 503
            assert "read-only" in ready.json()["detail"]
            v2 = httpx.get(f"{replica.url}/v2/health/ready")
            assert v2.status_code == 503
            assert "read-only" in v2.json()["error"]
            assert session_step(replica, sid) == 0
        finally:
            admin.replicaof("NO", "ONE")
    assert httpx.get(f"{replica.url}/v2/health/ready").status_code == 200
    assert unindexed(replica, sid, co2_like(1)).status_code == 200
