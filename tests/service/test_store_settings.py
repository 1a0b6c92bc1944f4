"""Choosing the state store: settings checks at start-up, and an unreachable Redis answering
503 with Retry-After (readiness too) rather than 500s."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from seqserve.service.settings import Settings

from scripts.launch import free_port
from tests.service.conftest import MakeClient


def test_redis_store_needs_a_url(repo: Path) -> None:
    with pytest.raises(ValidationError, match="state_store=redis needs SEQSERVE_REDIS_URL"):
        Settings(model_repository=repo, state_store="redis")
    with pytest.raises(ValidationError, match="needs SEQSERVE_REDIS_URL"):
        Settings(model_repository=repo, state_store="redis", redis_url="localhost:6379")


def test_snapshots_are_for_the_memory_store(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SEQSERVE_SNAPSHOT_PATH is for the memory store"):
        Settings(
            model_repository=repo,
            state_store="redis",
            redis_url="redis://localhost:6379/0",
            snapshot_path=tmp_path / "s.snap",
        )


def test_the_redis_url_stays_masked(repo: Path) -> None:
    settings = Settings(
        model_repository=repo, state_store="redis", redis_url="redis://:hunter2@redis:6379/0"
    )
    assert "hunter2" not in repr(settings)


def test_unreachable_redis_answers_503_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(
        state_store="redis",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        limits={"retry_after_s": 4},
    )
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["type"].endswith("/store-unreachable")
    created = client.post("/v1/sessions", json={"model": "diffed"})
    assert created.status_code == 503
    assert created.headers["retry-after"] == "4"
    assert "Redis" in created.json()["detail"]
    assert client.get("/v1/sessions/abc").status_code == 503
    assert client.get("/healthz").status_code == 200  # alive, just not ready
