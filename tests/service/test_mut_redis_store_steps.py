"""RedisStateStore on a real redis-server: what load() reads, what save() commits and
reports, the window of stored answers and sweeping, through the store's public methods
(written for the mutation survivors of #19)."""

from __future__ import annotations

import pytest
from seqserve.service.errors import NotFound, StepConflict
from seqserve.service.runtime.layout import Layout
from seqserve.service.state.packing import pack_replay
from seqserve.service.state.redis_codec import RedisSession
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Session

from tests.service.clock import FakeClock
from tests.service.redis_store_kit import (
    LAYOUT,
    Stores,
    answer,
    rows,
    same_rows,
    session,
    starts,
)


async def step(store: RedisStateStore, s: RedisSession, to: int, seed: int) -> None:
    """Commit an answer from s.step to `to` on this very session object (no new get)."""
    before = s.step
    s.step, s.replay = to, answer(before, to - before, seed)
    assert await store.save([s], LAYOUT, rows(1, seed), [before]) == [None]


def test_load_takes_the_row_get_read_only_at_the_step_it_was_read_at(stores: Stores) -> None:
    async def go() -> None:
        a, b = stores(), stores()
        s = session()
        await a.create(s, LAYOUT, rows(1, 0))
        mine = await a.get(s.id)
        await step(b, await b.get(s.id), 2, seed=2)
        assert same_rows(await a.load([mine], LAYOUT), rows(1, 0))  # as read: one atomic read
        mine.step = 2  # the caller moved on: the row read at 0 is not step 2's
        assert same_rows(await a.load([mine], LAYOUT), rows(1, 2))
        again = await a.get(s.id)  # read at 2
        await step(b, await b.get(s.id), 4, seed=4)
        again.step = 0
        assert same_rows(await a.load([again], LAYOUT), rows(1, 4))
        plain = Session(s.id, "m", "1", None, 4, s.created_at, s.last_used, 60, 600)
        assert same_rows(await a.load([plain], LAYOUT), rows(1, 4))

    stores.run(go)


def test_a_lone_vanished_row_is_its_404_and_in_a_batch_zeros(stores: Stores) -> None:
    async def go() -> None:
        store = stores()
        gone, kept = session(), session()
        await store.create(gone, LAYOUT, rows(1, 1))
        await store.create(kept, LAYOUT, rows(1, 2))
        await store.delete(gone.id)
        plain = [Session(x.id, "m", "1", None, 0, 0.0, 0.0, 60, 600) for x in (gone, kept)]
        with pytest.raises(NotFound):
            await store.load(plain[:1], LAYOUT)
        both = await store.load(plain, LAYOUT)
        assert same_rows(both.take(0), LAYOUT.zeros(1))
        assert same_rows(both.take(1), rows(1, 2))

    stores.run(go)


def test_a_session_saved_again_without_a_new_read_commits_each_time(stores: Stores) -> None:
    async def go() -> None:
        store = stores()
        s = session()
        await store.create(s, LAYOUT, None)
        mine = await store.get(s.id)
        for n in range(1, 5):
            await step(store, mine, 2 * n, seed=n)
        assert (await store.get(s.id)).step == 8
        assert same_rows(await store.load([mine], LAYOUT), rows(1, 4))

    stores.run(go)


def test_a_reset_and_restep_behind_a_committed_save_is_a_conflict(stores: Stores) -> None:
    async def go() -> None:
        a, b = stores(), stores()
        s = session()
        await a.create(s, LAYOUT, None)
        mine = await a.get(s.id)
        await step(a, mine, 2, seed=1)
        theirs = await b.get(s.id)
        theirs.step, theirs.replay = 0, None  # a reset, then the same index again
        assert await b.save([theirs], LAYOUT, LAYOUT.zeros(1), [2]) == [None]
        await step(b, theirs, 2, seed=9)
        mine.step, mine.replay = 4, answer(2)
        [error] = await a.save([mine], LAYOUT, rows(1, 3), [2])
        assert isinstance(error, StepConflict)

    stores.run(go)


def test_a_save_at_the_current_step_commits_whatever_step_it_was_read_at(
    stores: Stores,
) -> None:
    """Without a read at the expected index the step index alone is compared (the caller
    knows the index it names)."""

    async def go() -> None:
        a, b = stores(), stores()
        s = session()
        await a.create(s, LAYOUT, None)
        early = await a.get(s.id)  # read at 0
        await step(b, await b.get(s.id), 2, seed=1)
        early.step, early.replay = 3, answer(2, 1)
        assert await a.save([early], LAYOUT, rows(1, 2), [2]) == [None]
        late = await a.get(s.id)  # read at 3
        theirs = await b.get(s.id)
        theirs.step, theirs.replay = 0, None
        assert await b.save([theirs], LAYOUT, LAYOUT.zeros(1), [3]) == [None]
        await step(b, theirs, 1, seed=5)
        late.step, late.replay = 2, answer(1, 1)
        assert await a.save([late], LAYOUT, rows(1, 6), [1]) == [None]
        assert (await a.get(s.id)).step == 2

    stores.run(go)


def test_saving_a_deleted_session_is_404_not_410(stores: Stores) -> None:
    async def go() -> None:
        store = stores()
        s = session()
        await store.create(s, LAYOUT, None)
        mine = await store.get(s.id)
        other = stores()
        await other.delete(s.id)
        mine.step = 1
        [error] = await store.save([mine], LAYOUT, rows(1), [0])
        assert isinstance(error, NotFound)

    stores.run(go)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_the_window_keeps_depth_answers(stores: Stores, depth: int) -> None:
    async def go() -> None:
        store = stores(replay_depth=depth) if depth > 1 else stores()  # 1: the default
        s = session()
        await store.create(s, LAYOUT, None)
        mine = await store.get(s.id)
        for n in range(1, 5):
            await step(store, mine, 2 * n, seed=n)
        expected = [6, 4, 2, 0][:depth]
        assert starts(await store.replies(await store.get(s.id))) == expected
        assert starts(await store.replies(mine)) == expected
        raw = stores.raw()
        older = await raw.hget(stores.key(s.id), "older") or b""
        assert len(older) == (depth - 1) * len(pack_replay(answer(0)))
        mine.last_used += 1  # saved again with the same answer: the window is unchanged
        assert await store.save([mine], LAYOUT, rows(1, 4), [8]) == [None]
        assert starts(await store.replies(await store.get(s.id))) == expected

    stores.run(go)


def test_a_replica_keeping_fewer_answers_reads_no_more_than_its_depth(stores: Stores) -> None:
    async def go() -> None:
        deep, shallow = stores(replay_depth=4), stores(replay_depth=2)
        s = session()
        await deep.create(s, LAYOUT, None)
        mine = await deep.get(s.id)
        for n in range(1, 5):
            await step(deep, mine, 2 * n, seed=n)
        assert starts(await shallow.replies(await shallow.get(s.id))) == [6, 4]
        plain = Session(s.id, "m", "1", None, 8, 0.0, 0.0, 60, 600, answer(6))
        assert starts(await shallow.replies(plain)) == [6]

    stores.run(go)


@pytest.mark.parametrize(
    "older",
    [
        b"not a packed answer",
        pack_replay(answer(2)) + pack_replay(answer(4)),  # a gap, then one that would join
        pack_replay(answer(5)),  # overlaps the newest (which starts at 6)
    ],
    ids=["garbage", "gap", "overlap"],
)
def test_stale_older_answers_are_not_trusted_past_the_first_break(
    stores: Stores, older: bytes
) -> None:
    """A hash written by a replica that kept no window may hold any `older` field."""

    async def go() -> None:
        store = stores(replay_depth=4)
        s = session()
        await store.create(s, LAYOUT, None)
        mine = await store.get(s.id)
        await step(store, mine, 6, seed=1)
        await step(store, mine, 8, seed=2)
        raw = stores.raw()
        await raw.hset(stores.key(s.id), "older", older)
        assert starts(await store.replies(await store.get(s.id))) == [6]

    stores.run(go)


def test_a_sweep_takes_every_expired_session_in_batches(stores: Stores, clock: FakeClock) -> None:
    async def go() -> None:
        big = Layout(((2, 64), (2, 64)), 1, 2)  # over 1,000 bytes a session
        expired: list[int] = []
        evicted: list[int] = []
        store = stores(
            max_sessions=2000,
            max_state_bytes=1 << 24,
            on_expired=expired.append,
            on_evicted=evicted.append,
        )
        live = session(idle=600)
        await store.create(live, big, None)
        for _ in range(1001):
            await store.create(session(idle=60), big, None)
        clock.advance(120)
        assert await store.sweep() == 1001
        assert sum(expired) == 1001
        assert evicted == []
        assert store.stats() == (1, big.nbytes)
        assert await store.sweep() == 0
        assert (await store.get(live.id)).id == live.id

    stores.run(go)
