"""Real server processes for the V2 end-to-end tests, each started once per test session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.launch import ServerProcess

KEYS = ("alpha-key", "beta-key")
IDLE_TTL_S = 0.5
MAX_SESSIONS = 3


def _serve(repo: Path, factory: pytest.TempPathFactory, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess.seqserve(repo, factory.mktemp("v2-server"), **env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default settings."""
    yield from _serve(repo, tmp_path_factory, SEQSERVE_ORT_POOL_SIZE="4")


@pytest.fixture(scope="session")
def idle_server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Sequences expire after IDLE_TTL_S without a request (Triton's max sequence idle)."""
    yield from _serve(repo, tmp_path_factory, SEQSERVE_SESSIONS__IDLE_TTL_S=str(IDLE_TTL_S))


@pytest.fixture(scope="session")
def capped_server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """At most MAX_SESSIONS live sessions, and API keys on."""
    yield from _serve(
        repo,
        tmp_path_factory,
        SEQSERVE_LIMITS__MAX_SESSIONS=str(MAX_SESSIONS),
        SEQSERVE_SECURITY__API_KEYS=json.dumps(KEYS),
    )
