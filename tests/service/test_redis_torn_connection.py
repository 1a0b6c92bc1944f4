"""A cluster failover can make redis-py write to a connection it has just torn down: that is the
store being unreachable (503), not a server failure (500). Any other AttributeError is ours."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.connection import Connection
from seqserve.service.errors import Unavailable
from seqserve.service.state.redis_codec import reachable


async def _write_on_a_torn_down_connection() -> None:
    connection = Connection()  # never connected: its writer is None, as after a teardown
    await connection._send_packed_command([b"PING"])  # redis-py's own write path


def test_redis_py_writing_to_a_torn_down_connection_is_a_503() -> None:
    with pytest.raises(Unavailable) as caught, reachable(5):
        asyncio.run(_write_on_a_torn_down_connection())
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "5"


def test_our_own_attribute_errors_stay_errors() -> None:
    with pytest.raises(AttributeError), reachable(5):
        None.writelines  # type: ignore[attr-defined]  # noqa: B018
