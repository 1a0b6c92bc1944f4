"""RedisStateStore on a real redis-server: creating, placing, listing and waiting for
replicas, through the store's public methods (written for the mutation survivors of #19)."""

from __future__ import annotations

import pytest
from seqserve.service.errors import Gone, NotFound, Overloaded, Unavailable
from seqserve.service.state.redis_keys import Shards

from tests.service.clock import FakeClock
from tests.service.redis_store_kit import LAYOUT, Stores, rows, session


def test_an_unused_store_closes_and_a_standalone_redis_answers_ping(stores: Stores) -> None:
    async def go() -> None:
        await stores().close()  # never opened: nothing to close
        store = stores()
        await store.ping()

    stores.run(go)


def test_writes_wait_for_replicas_only_where_asked(stores: Stores) -> None:
    """A Redis with no replicas never acknowledges WAIT: a create or a step is a 503, while
    reads, touch, delete and sweep (which need no replica's copy) still work."""

    async def go() -> None:
        plain, waiting = stores(), stores(wait_replicas=1, wait_timeout_ms=10)
        s = session()
        await plain.create(s, LAYOUT, None)
        with pytest.raises(Unavailable):
            await waiting.create(session(), LAYOUT, None)
        got = await waiting.get(s.id)
        await waiting.touch(got)
        got.step = 2
        with pytest.raises(Unavailable):
            await waiting.save([got], LAYOUT, rows(1), [0])
        assert await waiting.sweep() == 0
        await waiting.delete(s.id)
        with pytest.raises(NotFound):
            await plain.get(s.id)

    stores.run(go)


@pytest.mark.parametrize("cap", ["sessions", "bytes"])
def test_fresh_sessions_fill_every_shard_before_a_429(stores: Stores, cap: str) -> None:
    """Caps split over 8 shards: the 8 sessions the caps allow are all admitted whichever
    shards their ids are first drawn in (a full shard sends the create to one with room)."""

    async def go() -> None:
        caps = {"max_sessions": 8} if cap == "sessions" else {"max_state_bytes": 8 * LAYOUT.nbytes}
        store = stores(shards=8, **caps)
        made = [session() for _ in range(8)]
        for s in made:
            await store.create(s, LAYOUT, None)
        with pytest.raises(Overloaded):
            await store.create(session(), LAYOUT, None)
        for s in made:
            assert (await store.get(s.id)).id == s.id
        assert store.stats()[0] == 8

    stores.run(go)


def test_chosen_ids_live_in_the_shard_their_id_names(stores: Stores) -> None:
    """V2 sequence ids are the caller's: found again by any replica from the id alone, and
    refused when their own shard is full even if another has room."""

    async def go() -> None:
        store = stores(shards=4, max_sessions=4)  # one session per shard
        shards = Shards(stores.prefix, 4, tagged=True)
        by_shard: dict[int, list[str]] = {}
        n = 0
        while min((len(v) for v in by_shard.values()), default=0) < 2 or len(by_shard) < 4:
            by_shard.setdefault(shards.of(f"seq-{n}"), []).append(f"seq-{n}")
            n += 1
        for k in range(4):
            await store.create(session(by_shard[k][0]), LAYOUT, None)
        other = stores(shards=4, max_sessions=4)
        for k in range(4):
            assert (await other.get(by_shard[k][0])).id == by_shard[k][0]
        await store.delete(by_shard[1][0])
        with pytest.raises(Overloaded):  # shard 0 is full; shard 1 has room, but not its own
            await store.create(session(by_shard[0][1]), LAYOUT, None)

    stores.run(go)


def test_an_owner_index_lists_its_sessions_and_expires_with_them(stores: Stores) -> None:
    async def go() -> None:
        store = stores()
        made = [session(owner="alice", ttl=600) for _ in range(3)]
        for s in made:
            await store.create(s, LAYOUT, None)
        await store.create(session(owner="bob"), LAYOUT, None)
        raw = stores.raw()
        index = f"{stores.prefix}:o:{{alice}}"
        assert 590_000 < await raw.pttl(index) <= 600_000  # no longer than the sessions live
        mine = await store.sessions_of("alice")
        assert sorted(s.id for s in mine) == sorted(s.id for s in made)
        assert len(await store.sessions_of("alice", limit=2)) == 2
        assert len(await store.sessions_of(None, limit=2)) == 2
        await raw.delete(stores.key(made[0].id))  # gone by itself (expired, evicted)
        assert len(await store.sessions_of("alice")) == 2
        assert await raw.zcard(index) == 2  # the listing dropped it from the index

    stores.run(go)


def test_a_reused_id_is_not_listed_to_its_former_owner(stores: Stores) -> None:
    async def go() -> None:
        store = stores()
        raw = stores.raw()
        for sid, later in (("x-1", "a"), ("x-2", "z")):
            await store.create(session(sid, owner="m"), LAYOUT, None)
            await raw.delete(stores.key(sid))  # expired; "m"'s index still names it
            await store.create(session(sid, owner=later), LAYOUT, None)
            assert [s.id for s in await store.sessions_of(later)] == [sid]
        assert await store.sessions_of("m") == []

    stores.run(go)


def test_a_listing_reads_past_its_first_batch(stores: Stores) -> None:
    async def go() -> None:
        store = stores(max_sessions=1000)
        for _ in range(501):
            await store.create(session(), LAYOUT, None)
        assert len(await store.sessions_of(None)) == 501

    stores.run(go)


def test_listings_and_reads_follow_the_store_clock(stores: Stores, clock: FakeClock) -> None:
    """A hash Redis still holds is gone to the store from its deadline on."""

    async def go() -> None:
        store = stores()
        clock.now = float(int(clock.now)) + 0.25  # ms-aligned: the deadline below is exact
        s = session(owner="o", idle=60)
        await store.create(s, LAYOUT, None)
        assert [x.id for x in await store.sessions_of("o")] == [s.id]
        clock.advance(60)  # exactly the deadline
        assert await store.sessions_of("o") == []
        with pytest.raises(Gone, match="expired"):
            await store.get(s.id)
        clock.advance(0.0004)  # past it, within the same millisecond
        assert await store.sessions_of("o") == []
        assert await store.sessions_of(None) == []
        with pytest.raises(Gone, match="expired"):
            await store.get(s.id)

    stores.run(go)


def test_eviction_takes_only_sessions_idle_past_the_setting(
    stores: Stores, clock: FakeClock
) -> None:
    async def go() -> None:
        evicted: list[int] = []
        never = stores(max_sessions=1)  # the default: no eviction
        keeps = stores(max_sessions=1, evict_idle_s=60)
        quick = stores(max_sessions=1, evict_idle_s=0.001, on_evicted=evicted.append)
        first = session()
        await never.create(first, LAYOUT, None)
        clock.advance(10)
        with pytest.raises(Overloaded):
            await never.create(session(), LAYOUT, None)
        with pytest.raises(Overloaded):  # idle 10 s: not yet 60
            await keeps.create(session(), LAYOUT, None)
        await quick.create(session(), LAYOUT, rows(1))
        assert evicted == [1]
        with pytest.raises(Gone, match="evicted"):
            await quick.get(first.id)

    stores.run(go)
