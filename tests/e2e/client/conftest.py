"""One real server per client test (in-memory store, the tests' model repository)."""

from __future__ import annotations

import pytest

from scripts.launch import ServerProcess
from tests.e2e.conftest import StartServer


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server()
