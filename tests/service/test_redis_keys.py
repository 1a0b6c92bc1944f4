"""Shards of the Redis store: evenly spaced slots, caps that sum exactly, ids that find their
shard on every replica."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from seqserve.service.state.redis_keys import Shards


def test_one_untagged_shard_keeps_the_single_node_layout() -> None:
    shards = Shards("seqserve", 1, tagged=False)
    assert shards.bases == ("seqserve",)
    assert shards.base("anything") == "seqserve"


@pytest.mark.parametrize("count", [3, 32, 100])
def test_tagged_shards_sit_in_evenly_spaced_slots(count: int) -> None:
    shards = Shards("p", count, tagged=True)
    slots = [key_slot(f"{base}:live".encode()) for base in shards.bases]
    for k, slot in enumerate(slots):
        assert k * 16384 // count <= slot < (k + 1) * 16384 // count
    # a 3-master cluster splits the slots in three: each master gets about a third of the
    # shards (the two whose range straddles a boundary may fall on either side)
    thirds = [sum(1 for s in slots if k * 16384 // 3 <= s < (k + 1) * 16384 // 3) for k in range(3)]
    assert max(thirds) - min(thirds) <= 2
    # every key of a shard is in its slot (the scripts build them from the base)
    assert {key_slot(f"{shards.bases[0]}:{s}".encode()) for s in ("s:x", "t:x", "epoch")} == {
        slots[0]
    }


def test_cap_shares_sum_to_the_cap() -> None:
    shards = Shards("p", 32, tagged=True)
    for total in (1, 7, 31, 32, 33, 100_000):
        assert sum(shards.cap(total, k) for k in range(32)) == total


def test_a_fresh_id_is_drawn_into_the_shard_asked_for_and_found_there() -> None:
    shards = Shards("p", 32, tagged=True)
    for k in (0, 5, 31):
        shard, token = shards.draw(k)
        assert shard == k
        assert shards.of(f"{token}.abcdefgh") == k  # a server-issued id: <random>.<epoch>
    assert shards.of("seq-42") == shards.of("seq-42")  # a caller's id: from the whole id
