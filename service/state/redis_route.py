"""Scripts sent to the Redis node that holds their keys: one pipeline per node, ending with
WAIT when a commit must be on a replica before it is acknowledged.

On a single Redis this is one pipeline. On a cluster the calls are grouped by the master
that holds their slot (the cluster client's slot map) and each group goes down one
connection, so WAIT covers exactly the writes before it. A group that meets a topology
change (MOVED, a dead master, a failover under way) has the slot map refreshed and is sent
once more; every script here is safe to run twice (the commit script recognises its own
tag). What still fails is a 503 with Retry-After: the client retries with its step index.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from seqserve.service.errors import Unavailable
from seqserve.service.state.redis_codec import transport_closed

ClusterMode = Literal["auto", "on", "off"]
_MOVED = (AskError, TryAgainError, ClusterDownError, RedisConnectionError, RedisTimeoutError)


@dataclass(frozen=True, slots=True)
class Lua:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Call:
    """One script run: `key` (KEYS[1]) routes it; the scripts build their other keys, all in
    the same slot, from their first argument."""

    lua: Lua
    key: str
    args: list[Any]


_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 5.0,
    "retry": Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2),
}


def connect(url: str, max_connections: int) -> Redis:
    """A pooled client; a restart or blip is retried briefly, an outage fails fast. A timed
    out command is retried too: the commit script recognises its own retry (redis_lua.SAVE).
    The URL may override the timeouts, e.g. `?socket_timeout=0.5`."""
    pool = ConnectionPool.from_url(  # the blocking pool costs ~15 µs more per command
        url, max_connections=max_connections, **_CLIENT_OPTIONS
    )
    return Redis.from_pool(pool)


async def open_client(url: str, max_connections: int, mode: ClusterMode) -> Redis | RedisCluster:
    """A single-node or a cluster client: `auto` asks the server (INFO cluster)."""
    if mode == "auto":
        probe = connect(url, 2)
        try:
            info = await probe.info("cluster")
        finally:
            await probe.aclose()
        mode = "on" if info.get("cluster_enabled") else "off"
    if mode == "off":
        return connect(url, max_connections)
    cluster = RedisCluster.from_url(url, max_connections=max_connections, **_CLIENT_OPTIONS)
    await cluster.initialize()
    return cluster


class Router:
    def __init__(self, wait_replicas: int, wait_timeout_ms: int, retry_after_s: int) -> None:
        self._wait = wait_replicas
        self._wait_ms = wait_timeout_ms
        self._retry_after = retry_after_s

    async def run(self, client: Redis | RedisCluster, calls: list[Call], wait: bool) -> list[Any]:
        """Each call's reply, in order; raises the first error a script answered with."""
        wait = wait and self._wait > 0
        if isinstance(client, RedisCluster):
            replies = await self._on_cluster(client, calls, wait)
        else:
            replies = await self._on_node(client, calls, wait)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _check(self, acks: Any) -> None:
        """WAIT's answer: too few replicas hold the writes (they may still be committed:
        a retry with the step index gets the stored reply, or recomputes the same one)."""
        if isinstance(acks, Exception):
            raise acks
        if isinstance(acks, int) and acks >= self._wait:
            return
        raise Unavailable(
            f"the write reached {acks} of {self._wait} Redis replicas in {self._wait_ms} ms "
            "(SEQSERVE_REDIS_WAIT_REPLICAS); retry with the same step index",
            self._retry_after,
        )

    async def _on_node(self, client: Redis, calls: list[Call], wait: bool) -> list[Any]:
        for attempt in range(2):
            async with client.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(call.lua.sha, 1, call.key, *call.args)
                if wait:
                    pipe.wait(self._wait, self._wait_ms)
                replies = list(await pipe.execute(raise_on_error=False))
            missing = {c.lua for c, r in zip(calls, replies, strict=False) if _noscript(r)}
            if not missing or attempt:
                break
            for lua in missing:  # a restarted Redis forgot them; the scripts never ran
                await client.script_load(lua.source)
        acks = replies.pop() if wait else None
        if wait and not any(isinstance(r, Exception) for r in replies):
            self._check(acks)  # else the script's own error is the answer
        return replies

    async def _on_cluster(self, client: RedisCluster, calls: list[Call], wait: bool) -> list[Any]:
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(3):
            groups: dict[str, tuple[ClusterNode, list[int]]] = {}
            for i in todo:
                node = client.get_node_from_key(calls[i].key)
                assert node is not None  # get_node_from_key raises on an uncovered slot
                groups.setdefault(node.name, (node, []))[1].append(i)
            sent = [
                self._to_node(node, [calls[i] for i in ids], wait) for node, ids in groups.values()
            ]
            results = await asyncio.gather(*sent, return_exceptions=True)
            todo, moved = [], False
            for (_, ids), result in zip(groups.values(), results, strict=True):
                group = [result] * len(ids) if isinstance(result, BaseException) else result
                for i, reply in zip(ids, group, strict=True):
                    replies[i] = reply
                    if isinstance(reply, _MOVED + (NoScriptError,)) or _moved(reply):
                        todo.append(i)
                        moved = moved or not isinstance(reply, NoScriptError)
            if not todo or attempt == 2:
                break
            if moved:  # a failover or resharding: learn the new slot map, then resend
                await asyncio.sleep(0.05 * (attempt + 1))
                # still electing, maybe: the next attempt (or the client's retry) will do
                with contextlib.suppress(RedisClusterException, *_MOVED):
                    await client.nodes_manager.initialize()
        for i in todo:
            if isinstance(replies[i], _MOVED) or _moved(replies[i]):
                replies[i] = Unavailable(
                    "the session store (Redis Cluster) is failing over; retry shortly",
                    self._retry_after,
                )
        return replies

    async def _to_node(self, node: ClusterNode, calls: list[Call], wait: bool) -> list[Any]:
        commands = [
            PipelineCommand(i, "EVALSHA", c.lua.sha, 1, c.key, *c.args) for i, c in enumerate(calls)
        ]
        if wait:
            commands.append(PipelineCommand(len(calls), "WAIT", self._wait, self._wait_ms))
        await node.execute_pipeline(commands)
        replies = [command.result for command in commands]
        for lua in {c.lua for c, r in zip(calls, replies, strict=False) if _noscript(r)}:
            await node.execute_command("SCRIPT", "LOAD", lua.source)  # e.g. a new master
        acks = replies.pop() if wait else None
        if wait and not any(isinstance(r, Exception) for r in replies):
            self._check(acks)  # else WAIT covered writes that did not all happen: resent
        return replies


def _noscript(reply: Any) -> bool:
    return isinstance(reply, NoScriptError)


def _moved(reply: Any) -> bool:
    """MOVED arrives as a MovedError (an AskError) or, from inside a pipeline, in its text;
    a node dying under a connection being set up, as a RuntimeError."""
    if not isinstance(reply, Exception):
        return False
    return transport_closed(reply) or str(reply).startswith(("MOVED", "ASK", "CLUSTERDOWN"))
