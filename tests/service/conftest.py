from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seqserve.service.app import create_app
from seqserve.service.settings import Settings

from scripts.launch import RedisServer
from tests.e2e.redis_server import require_redis_binary
from tests.service.clock import FakeClock
from tests.service.clock import install as install_clock
from tests.service.redis_store_kit import Stores

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(repo: Path) -> Iterator[MakeClient]:
    """Apps on the test repository, with settings overrides; lifespans run for real."""
    opened: list[TestClient] = []

    def make(repository: Path | None = None, **overrides: Any) -> TestClient:
        settings = Settings(model_repository=repository or repo, **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def new_session(client: TestClient, model: str = "diffed", **body: Any) -> dict[str, Any]:
    response = client.post("/v1/sessions", json={"model": model, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def step(client: TestClient, sid: str, inputs: Any, **body: Any) -> Any:
    return client.post(f"/v1/sessions/{sid}/steps", json={"inputs": inputs, **body})


def co2_like(n: int, seed: int = 0) -> np.ndarray:
    """A CO2-shaped series [n, 1]: trend + season + noise, in ppm."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (315 + 0.03 * t + 3 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 0.3, n))[:, None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The wall clock (`time.time`) frozen until the test advances it."""
    return install_clock(monkeypatch)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (no AOF) for one test module's store tests."""
    server = RedisServer(require_redis_binary(), tmp_path_factory.mktemp("redis"), aof=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def stores(redis_url: str) -> Stores:
    return Stores(redis_url)
