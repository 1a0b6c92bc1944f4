from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from seqserve.service.app import create_app
from seqserve.service.settings import LimitSettings, Settings

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def v2(repo: Path) -> Iterator[TestClient]:
    """One app for a module's in-process V2 tests; bodies capped at 64 KiB."""
    settings = Settings(model_repository=repo, limits=LimitSettings(max_body_bytes=MAX_BODY))
    with TestClient(create_app(settings)) as client:
        yield client
