"""Redis going away and coming back: 503 with Retry-After while it is down; sessions survive
a restart with AOF persistence, and without persistence they are gone: 410, "the state store
lost its data", told from a session that never existed (404) by the epoch in its id."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.launch import RedisServer, ServerProcess
from tests.e2e.conftest import StartServer
from tests.e2e.replicas.conftest import redis_env
from tests.e2e.replicas.test_replicas import create, step
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e


def _wait_ready(server: ServerProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the replica did not reconnect to Redis"
        time.sleep(0.05)


def test_sessions_survive_a_redis_restart_with_aof(
    redis_binary: str, tmp_path: Path, start_server: StartServer, repo: Path
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(20, seed=6)
    redis = RedisServer(redis_binary, tmp_path / "redis", aof=True).start()
    try:
        replica = start_server(**redis_env(redis, "aof"))
        sid = create(replica)
        outputs = step(replica, sid, raw[:10], 0)["outputs"]
        redis.stop(signal.SIGKILL)  # a crash: only what the AOF holds comes back
        down = httpx.post(
            f"{replica.url}/v1/sessions/{sid}/steps", json={"inputs": raw[10:].tolist(), "step": 10}
        )
        assert down.status_code == 503, down.text
        assert int(down.headers["retry-after"]) > 0
        assert "Redis" in down.json()["detail"]
        assert httpx.get(f"{replica.url}/readyz").status_code == 503
        redis.start()
        _wait_ready(replica)
        assert httpx.get(f"{replica.url}/v1/sessions/{sid}").json()["step"] == 10
        outputs += step(replica, sid, raw[10:], 10)["outputs"]
        np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=1e-5)
    finally:
        redis.stop()


def test_without_persistence_a_redis_restart_loses_sessions_as_410(
    redis_binary: str, tmp_path: Path, start_server: StartServer
) -> None:
    redis = RedisServer(redis_binary, tmp_path / "redis", aof=False).start()
    try:
        replica = start_server(**redis_env(redis, "volatile"))
        sid = create(replica)
        redis.stop(signal.SIGKILL)
        redis.start()
        _wait_ready(replica)
        gone = httpx.get(f"{replica.url}/v1/sessions/{sid}")
        assert gone.status_code == 410
        assert "the state store lost its data" in gone.json()["detail"]
        lost_step = httpx.post(f"{replica.url}/v1/sessions/{sid}/steps", json={"inputs": [[1.0]]})
        assert lost_step.status_code == 410
        fresh = create(replica)  # a new epoch: its sessions work, unknown ids stay 404
        assert httpx.get(f"{replica.url}/v1/sessions/{fresh}").status_code == 200
        assert httpx.get(f"{replica.url}/v1/sessions/{sid}").status_code == 410
        never = ("A" if fresh[0] != "A" else "B") + fresh[1:]  # this epoch, never issued
        assert httpx.get(f"{replica.url}/v1/sessions/{never}").status_code == 404
    finally:
        redis.stop()
