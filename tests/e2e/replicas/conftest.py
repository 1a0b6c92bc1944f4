"""Real Redis plus real replicas (`python -m seqserve.service` with SEQSERVE_STATE_STORE=redis)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.launch import RedisServer, ServerProcess
from tests.e2e.conftest import StartServer
from tests.e2e.redis_server import require_redis_binary

StartReplica = Callable[..., ServerProcess]


def redis_env(server: RedisServer, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "SEQSERVE_STATE_STORE": "redis",
        "SEQSERVE_REDIS_URL": server.url,
        "SEQSERVE_REDIS_PREFIX": prefix,
        **extra,
    }


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return require_redis_binary()


@pytest.fixture(scope="module")
def shared_redis(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(
    shared_redis: RedisServer, repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Three replicas sharing one Redis, started side by side."""
    logs = tmp_path_factory.mktemp("replicas")
    env = redis_env(shared_redis, "rr")
    servers = [ServerProcess.seqserve(repo, logs, **env) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(ServerProcess.start, servers))
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def start_replica(shared_redis: RedisServer, start_server: StartServer) -> StartReplica:
    """One more replica on the shared Redis (stopped at teardown)."""

    def start(**env: str) -> ServerProcess:
        return start_server(**redis_env(shared_redis, "rr", **env))

    return start
