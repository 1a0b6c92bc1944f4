"""Readiness follows the state store: both probes, v1 `/readyz` and V2 `/v2/health/ready`,
answer 503 while Redis is down and 200 once it is back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from scripts.launch import RedisServer
from tests.e2e.conftest import StartServer
from tests.e2e.replicas.conftest import redis_env

pytestmark = pytest.mark.e2e
PROBES = ("/readyz", "/v2/health/ready")


def _statuses(url: str) -> dict[str, int]:
    return {probe: httpx.get(url + probe, timeout=10).status_code for probe in PROBES}


def test_both_readiness_probes_are_503_while_redis_is_down(
    redis_binary: str, tmp_path: Path, start_server: StartServer
) -> None:
    redis = RedisServer(redis_binary, tmp_path / "redis", aof=False).start()
    try:
        replica = start_server(**redis_env(redis, "ready"))
        assert _statuses(replica.url) == dict.fromkeys(PROBES, 200)
        redis.stop()
        v1 = httpx.get(f"{replica.url}/readyz", timeout=10)
        v2 = httpx.get(f"{replica.url}/v2/health/ready", timeout=10)
        assert v1.status_code == 503, v1.text
        assert v1.json()["type"].endswith("/store-unreachable")
        assert v2.status_code == 503, v2.text
        assert "Redis" in v2.json()["error"]  # V2's format, with the same reason
        assert int(v2.headers["retry-after"]) > 0
        redis.start()
        deadline = time.monotonic() + 20
        while _statuses(replica.url) != dict.fromkeys(PROBES, 200):
            assert time.monotonic() < deadline, "the probes did not recover with Redis"
            time.sleep(0.05)
    finally:
        redis.stop()
