"""The router on a real cluster (3 masters, 2 replicas each): every call answered once and in
order across masters, scripts a node forgot reloaded, a stale slot map refreshed, a dead
master a 503 for its own keys only, and WAIT counting replicas only where a commit asks."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError
from seqserve.service.errors import Unavailable
from seqserve.service.state.redis_keys import Shards
from seqserve.service.state.redis_route import Call, Lua, Router, open_client

from scripts.launch import RedisClusterNodes
from tests.e2e.redis_server import require_redis_binary

pytestmark = pytest.mark.e2e
INCR = Lua("return redis.call('INCR', KEYS[1])")  # not idempotent: a rerun shows
ECHO = Lua("return {KEYS[1], ARGV[1]}")
REFUSE = Lua("return redis.error_reply('refused by the script')")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """Two replicas a master (WAIT 1 may count 2); a node timeout longer than any test, so a
    killed master stays in the slot map (no failover) until it is restarted."""
    nodes = RedisClusterNodes(
        require_redis_binary(), tmp_path_factory.mktemp("route"), replicas=2,
        node_timeout_ms=120_000,
    )  # fmt: skip
    try:
        nodes.start()
        for port in nodes.master_of_slot_ports():
            with nodes.client(nodes.ports.index(port)) as admin:
                nodes._poll("both replicas online", lambda a=admin: _online(a) == 2, 30)
        yield nodes
    finally:
        nodes.stop()


def _online(admin: redis.Redis) -> int:
    info = admin.info("replication")
    return sum(1 for k, v in info.items() if k.startswith("slave") and v["state"] == "online")


def _keys() -> list[str]:
    """One key per shard of a 32-shard layout: every master holds several."""
    prefix = uuid.uuid4().hex[:8]
    return [f"{base}:n" for base in Shards(prefix, 32, tagged=True).bases]


def _masters(cluster: RedisClusterNodes) -> list[int]:
    return sorted(cluster.master_of_slot_ports())


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _cluster_client(cluster: RedisClusterNodes) -> RedisCluster:
    client = await open_client(cluster.url, 8, "auto")
    assert isinstance(client, RedisCluster)
    return client


def test_open_client_honours_the_cluster_setting(cluster: RedisClusterNodes) -> None:
    """`off` is a plain client even on a cluster node (no probe overrides it); `on` and
    `auto` (asking the node) are cluster clients."""

    async def go() -> None:
        for mode, kind in (("off", Redis), ("on", RedisCluster), ("auto", RedisCluster)):
            client = await open_client(cluster.url, 4, mode)  # type: ignore[arg-type]
            try:
                assert type(client) is kind, mode
            finally:
                await client.aclose()

    _run(go())


def test_calls_across_every_master_run_once_each_and_answer_in_order(
    cluster: RedisClusterNodes,
) -> None:
    keys = _keys()
    assert len({cluster.serving(k)[0] for k in keys}) == 3

    async def go() -> None:
        client = await _cluster_client(cluster)
        try:
            router = Router(0, 300, 3)
            calls = [Call(ECHO, k, [f"arg-{i}"]) for i, k in enumerate(keys)]
            echoed = await router.run(client, calls, wait=False)
            assert echoed == [[k.encode(), f"arg-{i}".encode()] for i, k in enumerate(keys)]
            incr = [Call(INCR, k, []) for k in keys]
            assert await router.run(client, incr, wait=False) == [1] * len(keys)
            assert await router.run(client, incr, wait=True) == [2] * len(keys)  # WAIT 0: off
        finally:
            await client.aclose()

    _run(go())


def test_a_scripts_error_is_raised_and_the_other_calls_ran_once(
    cluster: RedisClusterNodes,
) -> None:
    keys = _keys()

    async def go() -> None:
        client = await _cluster_client(cluster)
        try:
            calls = [Call(INCR, keys[0], []), Call(REFUSE, keys[1], []), Call(INCR, keys[2], [])]
            with pytest.raises(ResponseError, match="refused by the script"):
                await Router(0, 300, 3).run(client, calls, wait=False)
            assert [await client.get(k) for k in keys[:3]] == [b"1", None, b"1"]
        finally:
            await client.aclose()

    _run(go())


def test_scripts_the_masters_forgot_are_loaded_and_run_once(cluster: RedisClusterNodes) -> None:
    """A restarted or newly promoted master has no scripts: NOSCRIPT, load, resend."""
    keys = _keys()

    async def go() -> None:
        client = await _cluster_client(cluster)
        try:
            for port in _masters(cluster):
                with cluster.client(cluster.ports.index(port)) as admin:
                    admin.script_flush()
            calls = [Call(INCR, k, []) for k in keys]
            assert await Router(0, 300, 3).run(client, calls, wait=False) == [1] * len(keys)
        finally:
            await client.aclose()

    _run(go())


def test_a_stale_slot_map_is_refreshed_and_each_call_sent_until_it_runs(
    cluster: RedisClusterNodes,
) -> None:
    """The client believes another master holds the keys (a resharding it did not see):
    MOVED, refresh, resend; the true owner then lacks the script (NOSCRIPT, load, resend):
    three sends, each call run once."""
    keys = _keys()
    owner = cluster.serving(keys[0])[0]
    mine = [k for k in keys if cluster.serving(k)[0] == owner]

    async def go() -> None:
        client = await _cluster_client(cluster)
        try:
            wrong = next(n for n in client.get_primaries() if n.port != owner)
            for k in mine:
                client.nodes_manager.slots_cache[key_slot(k.encode())] = [wrong]
            with cluster.client(cluster.ports.index(owner)) as admin:
                admin.script_flush()
            calls = [Call(INCR, k, []) for k in mine]
            assert await Router(0, 300, 3).run(client, calls, wait=False) == [1] * len(mine)
            assert client.get_node_from_key(mine[0]).port == owner  # the map was refreshed
        finally:
            await client.aclose()

    _run(go())


def test_wait_counts_every_replica_that_holds_the_write(cluster: RedisClusterNodes) -> None:
    """WAIT 1 answered by two replicas is acknowledged (at least, not exactly, one)."""
    keys = _keys()

    async def go() -> None:
        client = await _cluster_client(cluster)
        try:
            calls = [Call(INCR, k, []) for k in keys]
            assert await Router(1, 2000, 3).run(client, calls, wait=True) == [1] * len(keys)
            assert await Router(2, 2000, 3).run(client, calls, wait=True) == [2] * len(keys)
        finally:
            await client.aclose()

    _run(go())


def test_only_a_commit_waits_for_replicas(cluster: RedisClusterNodes) -> None:
    """Both replicas of a master frozen: a call that asks no WAIT still answers; one that
    does is a 503 with Retry-After (its write is on the master, and counted once)."""
    key = _keys()[0]
    _, replicas = cluster.serving(key)

    async def go() -> None:
        client = await _cluster_client(cluster)
        router = Router(1, 300, 3)
        try:
            assert await router.run(client, [Call(INCR, key, [])], wait=False) == [1]
            with pytest.raises(Unavailable) as refused:
                await router.run(client, [Call(INCR, key, [])], wait=True)
            assert refused.value.headers["Retry-After"] == "3"
            assert await client.get(key) == b"2"
        finally:
            await client.aclose()

    _frozen(cluster, replicas, go)


def test_one_node_runs_each_call_once_reloads_scripts_and_waits(
    cluster: RedisClusterNodes,
) -> None:
    """The single-Redis path, on one master taken as a plain Redis with its replicas."""
    owner = _masters(cluster)[0]
    keys = [k for k in _keys() if cluster.serving(k)[0] == owner]
    _, replicas = cluster.serving(keys[0])
    calls = [Call(INCR, k, []) for k in keys]

    async def go(expect: int, wait: bool) -> None:
        client = Redis(port=owner)
        try:
            assert await Router(1, 300, 3).run(client, calls, wait) == [expect] * len(keys)
        finally:
            await client.aclose()

    _run(go(1, True))
    with cluster.client(cluster.ports.index(owner)) as admin:
        admin.script_flush()
    _run(go(2, True))

    async def refused() -> None:
        with pytest.raises(Unavailable):
            await go(3, True)
        await go(4, False)

    _frozen(cluster, replicas, refused)


def test_a_dead_master_is_a_503_for_its_keys_and_the_others_still_answer(
    cluster: RedisClusterNodes,
) -> None:
    """SIGKILL a master (no failover yet): its calls are Unavailable with Retry-After, not a
    connection error; a batch without its keys is answered. Restarted after."""
    keys = _keys()
    dead = _masters(cluster)[-1]
    on_dead = [k for k in keys if cluster.serving(k)[0] == dead]
    alive = [k for k in keys if cluster.serving(k)[0] != dead]

    async def go() -> None:
        client = await _cluster_client(cluster)
        router = Router(0, 300, 3)
        try:
            cluster.kill(dead)
            with pytest.raises(Unavailable) as refused:
                await router.run(client, [Call(INCR, k, []) for k in on_dead], wait=False)
            assert refused.value.headers["Retry-After"] == "3"
            got = await router.run(client, [Call(INCR, k, []) for k in alive], wait=False)
            assert got == [1] * len(alive)
        finally:
            await client.aclose()

    try:
        _run(go())
    finally:
        cluster.restart(dead)


def _frozen(cluster: RedisClusterNodes, ports: list[int], scenario: Any) -> None:
    for port in ports:
        cluster.signal(port, signal.SIGSTOP)
    try:
        _run(scenario())
    finally:
        for port in ports:
            cluster.signal(port, signal.SIGCONT)
