"""Where a session's keys live: the store is split into shards, each one hash slot.

A shard holds its sessions and its own counters (live set, idle set, index, bytes, epoch),
all under one base key, so every script touches one slot (Redis Cluster runs it on one
node). On a single Redis with one shard the base is the prefix itself, the layout of old.
On a cluster each base carries a hash tag; the tags are picked so that the shards' slots are
evenly spaced over the 16384 slots, hence spread evenly over masters that split the slots
evenly. A session's shard follows from its id (the random part of a fresh id), so any
replica finds it with no lookup; a fresh id can be drawn for a chosen shard.
"""

from __future__ import annotations

import secrets
import zlib
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from seqserve.service.state.redis_codec import epoch_of


@cache
def _tags(shards: int) -> tuple[str, ...]:
    """For shard k, the smallest number whose slot falls in the k-th of `shards` equal
    ranges: deterministic, so every replica computes the same tags."""
    tags, n = [], 0
    for k in range(shards):
        low = k * REDIS_CLUSTER_HASH_SLOTS // shards
        high = (k + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
        n = 0
        while not low <= key_slot(str(n).encode()) < high:
            n += 1
        tags.append(str(n))
    return tuple(tags)


class Shards:
    """The bases of `count` shards under `prefix`; tagged unless one untagged shard will do."""

    def __init__(self, prefix: str, count: int, tagged: bool) -> None:
        self.count = count
        self.bases: tuple[str, ...]
        if count == 1 and not tagged:
            self.bases = (prefix,)
        else:
            self.bases = tuple(f"{prefix}:{{{tag}}}" for tag in _tags(count))

    def of(self, session_id: str) -> int:
        """The shard of an id: from the random part of a server-issued id, else the whole id."""
        head = session_id.rpartition(".")[0] if epoch_of(session_id) else session_id
        return zlib.crc32(head.encode()) % self.count

    def base(self, session_id: str) -> str:
        return self.bases[self.of(session_id)]

    def draw(self, shard: int | None = None) -> tuple[int, str]:
        """A fresh random id part (144 bits) and its shard; for a given shard, redrawn until
        it lands there (about `count` draws)."""
        while True:
            token = secrets.token_urlsafe(18)
            k = zlib.crc32(token.encode()) % self.count
            if shard is None or k == shard:
                return k, token

    def cap(self, total: int, shard: int) -> int:
        """Shard k's share of a global cap: the shares sum to the cap exactly."""
        return total // self.count + (1 if shard < total % self.count else 0)
