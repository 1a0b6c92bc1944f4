from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.launch import ServerProcess

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(repo: Path, tmp_path: Path) -> Iterator[StartServer]:
    """Start real server processes (stopped at teardown); env overrides as keywords."""
    running: list[ServerProcess] = []

    def start(repository: Path | None = None, **env: str) -> ServerProcess:
        server = ServerProcess.seqserve(repository or repo, tmp_path, **env)
        running.append(server)
        return server.start()

    yield start
    for server in running:
        server.stop()
