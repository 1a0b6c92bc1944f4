"""Real server processes with the gRPC service on, each started once per test session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.launch import ServerProcess, free_port
from tests.e2e.v2.conftest import IDLE_TTL_S, KEYS, MAX_SESSIONS

__all__ = ["IDLE_TTL_S", "KEYS", "MAX_SESSIONS"]


def _serve(repo: Path, factory: pytest.TempPathFactory, **env: str) -> Iterator[ServerProcess]:
    env = {"SEQSERVE_GRPC_PORT": str(free_port()), **env}
    server = ServerProcess.seqserve(repo, factory.mktemp("grpc-server"), **env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def grpc_server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default settings, gRPC on."""
    yield from _serve(repo, tmp_path_factory, SEQSERVE_ORT_POOL_SIZE="4")


@pytest.fixture(scope="session")
def idle_grpc_server(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Sequences expire after IDLE_TTL_S without a request."""
    yield from _serve(repo, tmp_path_factory, SEQSERVE_SESSIONS__IDLE_TTL_S=str(IDLE_TTL_S))


@pytest.fixture(scope="session")
def capped_grpc_server(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """At most MAX_SESSIONS live sessions, and API keys on."""
    yield from _serve(
        repo,
        tmp_path_factory,
        SEQSERVE_LIMITS__MAX_SESSIONS=str(MAX_SESSIONS),
        SEQSERVE_SECURITY__API_KEYS=json.dumps(KEYS),
    )
