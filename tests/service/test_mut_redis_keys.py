"""The shard layout is data on disk: every replica, of any version, must derive the same
bases, so the tags are pinned and the rule that picks them is checked for uneven splits."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from seqserve.service.state.redis_keys import Shards

# The 32 shards a cluster gets by default: sessions written under these bases must be found
# after an upgrade, so a change here is a data migration, not a refactor.
TAGS_32 = (
    "10", "113", "21", "3", "61", "72", "50", "43", "11", "112", "20", "2", "60", "73", "51",
    "42", "12", "111", "23", "1", "63", "70", "52", "41", "13", "110", "22", "0", "62", "71",
    "53", "40",
)  # fmt: skip


def test_the_default_cluster_layout_is_stable() -> None:
    assert Shards("seqserve", 32, tagged=True).bases == tuple(
        f"seqserve:{{{tag}}}" for tag in TAGS_32
    )


@pytest.mark.parametrize("count", [3, 29, 36, 48, 96])
def test_each_tag_is_the_smallest_number_in_its_shards_slot_range(count: int) -> None:
    """29, 36, 48, 96 shards split 16384 slots unevenly: a range's ends are not whole, so
    rounding them the other way, or leaving an end out, picks another tag."""
    shards = Shards("p", count, tagged=True)
    for k, base in enumerate(shards.bases):
        low, high = k * 16384 // count, (k + 1) * 16384 // count
        tag = int(base.removeprefix("p:{").removesuffix("}"))
        assert low <= key_slot(str(tag).encode()) < high
        assert not any(low <= key_slot(str(n).encode()) < high for n in range(tag))


def test_one_shard_on_a_cluster_is_still_tagged() -> None:
    """A cluster with SEQSERVE_REDIS_SHARDS=1: the base carries a hash tag, so every key of
    the shard (live set, index, sessions) lands in one slot."""
    shards = Shards("p", 1, tagged=True)
    assert shards.bases == ("p:{0}",)
    assert len({key_slot(f"{shards.base('any')}:{s}".encode()) for s in ("live", "s:x")}) == 1


def test_several_shards_on_one_redis_each_get_their_own_base() -> None:
    """Shards on a single Redis (tagged=False) still need one base each: sharing the bare
    prefix would merge their counters and their live sets."""
    shards = Shards("p", 4, tagged=False)
    assert len(set(shards.bases)) == 4
    ids = [f"seq-{n}" for n in range(64)]
    assert {shards.base(i) for i in ids} == set(shards.bases)
