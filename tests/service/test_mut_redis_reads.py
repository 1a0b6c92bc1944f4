"""The Redis store across shards on a real redis-server: fresh sessions are placed in the shard
with room so the caps fill exactly, and ids that look server-issued answer 404 or 410 by epoch."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from seqserve.service.errors import Gone, NotFound, Overloaded, StepConflict
from seqserve.service.runtime.layout import Layout
from seqserve.service.state.redis_keys import Shards
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Session

TINY = Layout(((1, 1),), 1, 1)  # 20 bytes a session
BIG = Layout(((1, 8),), 1, 1)  # 48 bytes: more than two tiny ones, at most three
ROUNDS = 6  # fresh ids draw a random shard: enough tries that some draw a full one


@asynccontextmanager
async def opened(
    url: str, shards: int, sessions: int, nbytes: int
) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore(
        url, uuid.uuid4().hex[:8], sessions, nbytes, retry_after_s=3, tombstone_ttl_s=60,
        shards=shards,
    )  # fmt: skip
    try:
        yield store
    finally:
        await store.close()


def session(session_id: str = "") -> Session:
    now = time.time()
    return Session(session_id, "m", "1", None, 0, now, now, 60, 600)


def ids_in(count: int, shard: int, n: int) -> list[str]:
    """`n` caller-chosen ids (V2 style) that hash to `shard` of `count`."""
    shards = Shards("any", count, tagged=True)
    found = (f"seq-{i}" for i in range(10_000) if shards.of(f"seq-{i}") == shard)
    return [next(found) for _ in range(n)]


async def fill(
    store: RedisStateStore, count: int, per_shard: dict[int, tuple[int, Layout]]
) -> list[str]:
    """Caller-id sessions: `n` of `layout` in each shard named."""
    made = []
    for shard, (n, layout) in per_shard.items():
        for sid in ids_in(count, shard, n):
            await store.create(session(sid), layout, None)
            made.append(sid)
    return made


async def fresh_lands_in(store: RedisStateStore, count: int, shard: int, layout: Layout) -> str:
    """A fresh session is created, readable, and placed in `shard` (the only one with room)."""
    s = session()
    await store.create(s, layout, None)
    assert Shards("any", count, tagged=True).of(s.id) == shard
    assert (await store.get(s.id)).id == s.id  # found again: its id leads to its shard
    return s.id


def test_fresh_sessions_fill_the_session_cap_exactly_whichever_shard_has_room(
    redis_url: str,
) -> None:
    count = 4

    async def go() -> None:
        for free in range(count):
            async with opened(redis_url, count, 2 * count, 1 << 30) as store:
                others = {k: (2, TINY) for k in range(count) if k != free}
                await fill(store, count, others)  # every shard but `free` at its share (2)
                for _ in range(ROUNDS):  # from empty: two slots left, then one
                    first = await fresh_lands_in(store, count, free, TINY)
                    second = await fresh_lands_in(store, count, free, TINY)
                    with pytest.raises(Overloaded) as refused:  # now every shard is full
                        await store.create(session(), TINY, None)
                    assert (
                        refused.value.detail == f"session cap reached ({2 * count} live sessions)"
                    )
                    await store.delete(first)
                    await store.delete(second)

    asyncio.run(go())


def test_fresh_sessions_go_where_bytes_fit_not_where_most_slots_are_free(redis_url: str) -> None:
    """Each other shard holds one big session (9 of 10 slots free, no room for a tiny one);
    the one with room holds two tiny ones (8 free) and takes exactly one more."""
    count, share = 4, 3 * TINY.nbytes

    async def go() -> None:
        for room in range(count):
            async with opened(redis_url, count, 10 * count, share * count) as store:
                per_shard = {k: (1, BIG) for k in range(count) if k != room}
                await fill(store, count, {**per_shard, room: (2, TINY)})
                for _ in range(ROUNDS):
                    placed = await fresh_lands_in(store, count, room, TINY)
                    with pytest.raises(Overloaded) as refused:
                        await store.create(session(), TINY, None)
                    assert (
                        refused.value.detail == f"state memory cap reached ({share * count} bytes)"
                    )
                    await store.delete(placed)

    asyncio.run(go())


def test_an_empty_shard_whose_byte_share_one_session_fills_takes_it(redis_url: str) -> None:
    count = 2

    async def go() -> None:
        for room in range(count):
            for _ in range(ROUNDS):  # a new store each time: a shard that never held a session
                async with opened(redis_url, count, 100, TINY.nbytes * count) as store:
                    await fill(store, count, {1 - room: (1, TINY)})
                    await fresh_lands_in(store, count, room, TINY)
                    with pytest.raises(Overloaded):
                        await store.create(session(), TINY, None)

    asyncio.run(go())


def test_ids_that_look_server_issued_answer_by_their_epoch(redis_url: str) -> None:
    """410 store-lost for an id of another epoch (Redis lost its data since), 404 for an id of
    this epoch or one a caller chose, however much it resembles a server-issued one."""

    async def go() -> None:
        async with opened(redis_url, 1, 100, 1 << 20) as store:
            s = session()
            await store.create(s, TINY, None)
            head, _, epoch = s.id.rpartition(".")
            assert (len(head), len(epoch)) == (24, 8)
            other = "A" * 24
            for lost in ("--------", "zzzzzzzz"):  # below and above this epoch
                assert lost != epoch
                with pytest.raises(Gone) as gone:
                    await store.get(f"{other}.{lost}")
                assert gone.value.extra["reason"] == "store-lost"
            never = [f"{other}.{epoch}", "v2.seq-1", f"{'A' * 30}.{epoch}", f"abc.{epoch}"]
            never += [f"{other}.{epoch}xy", f"{other}.abc", f"{other}.{epoch[:7]}"]
            never += [f"{'A' * 23}.zzzzzzzz", f"{'A' * 25}.zzzzzzzz"]
            never += [f"{other}.zzzzzzz", f"{other}.zzzzzzzzz"]
            for sid in never:
                with pytest.raises(NotFound):
                    await store.get(sid)

    asyncio.run(go())


def test_a_commit_answers_ok_a_conflict_with_the_step_and_a_deleted_session_404(
    redis_url: str,
) -> None:
    async def go() -> None:
        async with opened(redis_url, 1, 100, 1 << 20) as store:
            s = session()
            await store.create(s, TINY, None)
            first, stale = await store.get(s.id), await store.get(s.id)
            first.step = stale.step = 3
            assert await store.save([first], TINY, TINY.zeros(1), [0]) == [None]
            [conflict] = await store.save([stale], TINY, TINY.zeros(1), [0])
            assert isinstance(conflict, StepConflict)
            assert conflict.extra["current_step"] == 3
            await store.delete(s.id)
            first.step = 4
            [ended] = await store.save([first], TINY, TINY.zeros(1), [3])
            assert type(ended) is NotFound  # deleted: no tombstone, this epoch

    asyncio.run(go())
