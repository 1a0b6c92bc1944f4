"""Reads that span a Redis store's shards: which masters take writes (readiness) and which
shard has room for a new session (placement at a full shard)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError
from seqserve.service.errors import Unavailable
from seqserve.service.state.redis_codec import reachable
from seqserve.service.state.redis_keys import Shards


def pipeline(client: Redis | RedisCluster) -> Any:
    """A plain pipeline (no MULTI); a cluster's is split per node by the client."""
    return client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(False)


async def any_master_writable(client: RedisCluster, shards: Shards, retry_after_s: int) -> None:
    """Returns once one master holding a shard takes a write (DEL: a read-only replica
    refuses it, a full Redis takes it); one master failing over then makes only its
    sessions answer 503, rather than every replica leave the load balancer."""
    probes = {}  # each master that holds a shard, with a key of its own
    for base in shards.bases:
        node = client.get_node_from_key(base + ":probe")
        assert node is not None  # it raises on a slot no node covers
        probes[node.name] = (node, base + ":probe")
    # straight to each node, at once, no retries: the first master that answers will do
    sent = [node.execute_command("DEL", key) for node, key in probes.values()]
    for answer in asyncio.as_completed(sent):
        with contextlib.suppress(Unavailable, RedisError, OSError, RuntimeError):
            with reachable(retry_after_s):
                await answer
            return
    raise Unavailable("no Redis Cluster master takes writes; retry shortly", retry_after_s)


async def roomiest(
    client: Redis | RedisCluster, shards: Shards, caps: tuple[int, int], nbytes: int
) -> int | None:
    """The shard with the most free sessions under its share of the caps (sessions, bytes)
    that also has room for `nbytes`; None when every shard is full."""
    async with pipeline(client) as pipe:
        for base in shards.bases:
            pipe.zcard(base + ":live")
            pipe.get(base + ":bytes")
        replies = await pipe.execute()
    best, room = None, 0
    for k in range(shards.count):
        n, b = int(replies[2 * k]), int(replies[2 * k + 1] or 0)
        free = shards.cap(caps[0], k) - n
        if free > room and b + nbytes <= shards.cap(caps[1], k):
            best, room = k, free
    return best
