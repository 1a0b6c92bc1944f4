"""The Redis store when Redis itself refuses or stalls (full, read-only, stopped, out of
connections, not the cluster it was told) answers 503s a client can retry; and readiness on a
real Redis Cluster."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError
from seqserve.service.errors import StoreFull, StoreReadOnly, Unavailable
from seqserve.service.runtime.layout import Layout
from seqserve.service.state.redis_keys import Shards
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Session

from scripts.launch import RedisClusterNodes, RedisServer, free_port
from tests.e2e.redis_server import require_redis_binary

LAYOUT = Layout(((1, 2),), 1, 1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own: these tests fill it, demote it or stop it."""
    redis = RedisServer(require_redis_binary(), tmp_path / "redis", aof=False).start()
    try:
        yield redis
    finally:
        if redis.proc is not None:
            redis.proc.send_signal(signal.SIGCONT)
        redis.stop()


@asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore(url, uuid.uuid4().hex[:8], 100, 1 << 20, 3, 60, **options)
    try:
        yield store
    finally:
        await store.close()


def session() -> Session:
    now = time.time()
    return Session("", "m", "1", None, 0, now, now, 60, 600)


def test_a_full_redis_refuses_creates_with_503_yet_stays_ready_and_deletes(
    server: RedisServer,
) -> None:
    async def go() -> None:
        async with opened(server.url) as store:
            kept = session()
            await store.create(kept, LAYOUT, None)
            with server.client() as admin:
                admin.config_set("maxmemory", "1")  # noeviction: every write is refused
                try:
                    with pytest.raises(StoreFull) as full:
                        await store.create(session(), LAYOUT, None)
                    assert full.value.status == 503
                    assert full.value.headers["Retry-After"] == "3"
                    await store.ping()  # DEL still runs on a full Redis: ready
                    await store.delete(kept.id)  # and deleting frees it
                finally:
                    admin.config_set("maxmemory", "0")
            await store.create(session(), LAYOUT, None)

    asyncio.run(go())


def test_a_read_only_replica_refuses_writes_with_503_but_serves_reads(
    server: RedisServer,
) -> None:
    async def go() -> None:
        async with opened(server.url) as store:
            kept = session()
            await store.create(kept, LAYOUT, None)
            with server.client() as admin:
                admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # no master
                try:
                    with pytest.raises(StoreReadOnly):  # readiness: the DEL probe
                        await store.ping()
                    with pytest.raises(StoreReadOnly) as refused:  # a script's write
                        await store.create(session(), LAYOUT, None)
                    assert refused.value.status == 503
                    assert (await store.get(kept.id)).id == kept.id
                finally:
                    admin.execute_command("REPLICAOF", "NO", "ONE")

    asyncio.run(go())


def test_an_unexpected_redis_error_is_not_passed_off_as_a_refused_write(
    server: RedisServer,
) -> None:
    """A key of the wrong type (something else wrote there) is a fault to surface (a 500 in
    the logs), not a 503 telling clients that Redis is read-only or full."""

    async def go() -> None:
        prefix = "other"
        store = RedisStateStore(server.url, prefix, 100, 1 << 20, 3, 60)
        try:
            with server.client() as admin:
                admin.set(f"{prefix}:s:clash", "not a hash")
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await store.get("clash")
        finally:
            await store.close()

    asyncio.run(go())


def test_a_stopped_redis_is_a_503_once_the_socket_timeout_passes(server: RedisServer) -> None:
    async def go() -> None:
        async with opened(server.url + "?socket_timeout=0.2") as store:
            kept = session()
            await store.create(kept, LAYOUT, None)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(Unavailable) as stalled:
                    await store.get(kept.id)
                assert "unreachable" in stalled.value.detail
            finally:
                server.proc.send_signal(signal.SIGCONT)

    asyncio.run(go())


def test_out_of_connections_is_a_503_that_says_so(server: RedisServer) -> None:
    async def go() -> None:
        async with opened(server.url, max_connections=1) as store:
            kept = session()
            await store.create(kept, LAYOUT, None)
            calls = [store.get(kept.id) for _ in range(8)]
            answers = await asyncio.gather(*calls, return_exceptions=True)
            refused = [a for a in answers if isinstance(a, Exception)]
            assert refused, "eight reads at once on one connection"
            for exc in refused:
                assert isinstance(exc, Unavailable)
                assert exc.detail == "too many concurrent session store operations; retry shortly"
            assert any(not isinstance(a, Exception) and a.id == kept.id for a in answers)

    asyncio.run(go())


def test_cluster_mode_forced_on_a_plain_redis_is_a_503(server: RedisServer) -> None:
    async def go() -> None:
        async with opened(server.url, cluster="on") as store:
            with pytest.raises(Unavailable):
                await store.ping()

    asyncio.run(go())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(require_redis_binary(), tmp_path_factory.mktemp("cluster"), 2)
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def test_a_cluster_is_ready_while_its_masters_take_writes(cluster: RedisClusterNodes) -> None:
    async def go() -> None:
        async with opened(cluster.url) as store:
            await store.ping()
            made = session()
            await store.create(made, LAYOUT, None)
            assert (await store.get(made.id)).id == made.id
            await store.ping()

    asyncio.run(go())


def test_a_script_error_on_a_cluster_is_not_mistaken_for_a_failover(
    cluster: RedisClusterNodes,
) -> None:
    """A script failing on a key of the wrong type (something else wrote there) surfaces as
    that error, not as a moved slot resent three times and then reported as a failover."""
    prefix = uuid.uuid4().hex[:8]
    key = f"{Shards(prefix, 32, tagged=True).base('clash')}:s:clash"  # 32: a cluster's default
    with redis.Redis(port=cluster.serving(key)[0]) as master:
        master.set(key, "not a hash")

    async def go() -> None:
        store = RedisStateStore(cluster.url, prefix, 100, 1 << 20, 3, 60)
        try:
            clash = Session("clash", "m", "1", None, 0, time.time(), time.time(), 60, 600)
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await store.create(clash, LAYOUT, None)
        finally:
            await store.close()

    asyncio.run(go())
