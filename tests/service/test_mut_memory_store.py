"""The memory store's edges that mutation testing found unpinned: a reused slot never acting
as its old session, loads across slabs, step conflicts, older replies, owners, eviction and
expiry at their exact deadlines, and the tombstones' order and cap (an injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest
from seqserve.service.errors import Gone, NotFound, Overloaded, StepConflict
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state import memory
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.store import Replay, Session

LAYOUT = Layout(((1, 4), (1, 4)), 3, 2)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(clock: Clock, **kw: Any) -> MemoryStateStore:
    return MemoryStateStore(kw.pop("max_sessions", 100), 1 << 30, 1, 30.0, clock=clock, **kw)


def _session(sid: str = "", model: tuple[str, str] = ("m", "1"), **kw: Any) -> Session:
    fields: dict[str, Any] = {"owner": None, "step": 0, "created_at": 1000.0}
    fields |= {"last_used": fields["created_at"], "idle_ttl_s": 60.0, "ttl_s": 600.0}
    fields |= kw
    if "last_used" not in kw:
        fields["last_used"] = fields["created_at"]
    return Session(id=sid, model=model[0], version=model[1], **fields)


def _rows(batch: int, value: float) -> StateRows:
    rows = LAYOUT.zeros(batch)
    for t in rows.tensors:
        t[:] = value
    return rows


def _reply(start: int, mark: int = 0) -> Replay:
    return Replay(start, bytes([mark]) * 16, np.full((1, 2), float(mark)))


async def _commit(store: MemoryStateStore, s: Session, value: float = 1.0) -> None:
    """One one-timestep step of `s` from its current step."""
    expected = s.step
    s.step, s.replay = expected + 1, _reply(expected, mark=expected + 1)
    assert await store.save([s], LAYOUT, _rows(1, value), [expected]) == [None]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({}, {}),  # generated ids, same model, same time
        ({"sid": "s"}, {"sid": "s", "created_at": 1001.0}),
        ({"sid": "s"}, {"sid": "s", "created_at": 999.0}),  # the wall clock stepped back
        ({"sid": "s", "model": ("m", "2")}, {"sid": "s", "model": ("m", "1")}),
        ({"sid": "s", "model": ("m", "1")}, {"sid": "s", "model": ("m", "2")}),
        ({"sid": "b"}, {"sid": "a"}),
        ({"sid": "a"}, {"sid": "b"}),
    ],
    ids=[
        *("generated", "same-name-later", "same-name-earlier"),
        *("older-version", "newer-version", "b-a", "a-b"),
    ],
)
def test_a_slot_taken_by_a_new_session_never_acts_as_the_old_one(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    async def scenario() -> None:
        store = _store(Clock())
        gone = _session(**old)
        await store.create(gone, LAYOUT, None)
        await store.delete(gone.id)
        taker = _session(**new)
        await store.create(taker, LAYOUT, None)
        assert taker.slot == gone.slot  # freed slots are reused first
        await _commit(store, taker, value=7.0)
        assert await store.replies(gone) == []
        gone.last_used = 1500.0
        await store.touch(gone)
        assert (await store.get(taker.id)).last_used == taker.last_used
        loaded = await store.load([gone], LAYOUT)
        assert not any(t.any() for t in loaded.tensors)
        (error,) = await store.save([gone], LAYOUT, _rows(1, 3.0), [0])
        assert isinstance(error, Gone)
        kept = await store.load([await store.get(taker.id)], LAYOUT)
        assert all((t == 7.0).all() for t in kept.tensors)

    run(scenario())


def test_one_load_reads_each_session_from_its_own_slab() -> None:
    async def scenario() -> None:
        store = _store(Clock())
        a, b, dead = _session(), _session(model=("m", "2")), _session()
        for s in (a, b, dead):
            await store.create(s, LAYOUT, None)
        await _commit(store, a, value=1.0)
        await _commit(store, b, value=2.0)
        await store.delete(dead.id)
        both = await store.load([a, b], LAYOUT)
        assert [float(both.tensors[0][i].max()) for i in range(2)] == [1.0, 2.0]
        mixed = await store.load([b, dead, a], LAYOUT)
        assert [float(mixed.tensors[1][i].max()) for i in range(3)] == [2.0, 0.0, 1.0]
        (only_dead,) = (await store.load([dead], LAYOUT)).tensors[:1]
        assert not only_dead.any()

    run(scenario())


def test_a_commit_expecting_any_other_step_is_a_conflict() -> None:
    async def scenario() -> None:
        store = _store(Clock())
        s = _session(step=2)
        await store.create(s, LAYOUT, None)
        for expected in (1, 3):
            s.step = expected + 1
            (error,) = await store.save([s], LAYOUT, _rows(1, 1.0), [expected])
            assert isinstance(error, StepConflict)
            assert error.extra["current_step"] == 2
        with pytest.raises(ValueError, match="strict|shorter|longer"):
            await store.save([s], LAYOUT, _rows(1, 1.0), [2, 2])
        assert (await store.get(s.id)).step == 2

    run(scenario())


def test_older_replies_are_kept_only_for_new_requests_and_up_to_the_depth() -> None:
    async def scenario() -> None:
        store = _store(Clock(), replay_depth=2)
        s = _session()
        await store.create(s, LAYOUT, None)
        await _commit(store, s)
        await _commit(store, s)
        assert [r.start for r in await store.replies(s)] == [1, 0]

        store = _store(Clock(), replay_depth=3)
        s = _session()
        await store.create(s, LAYOUT, None)
        await _commit(store, s)  # step 1, reply starting at 0
        # commits whose reply does not start at the expected step push nothing
        s.step = 2
        assert await store.save([s], LAYOUT, _rows(1, 1.0), [1]) == [None]
        s.step, s.replay = 7, _reply(6)
        assert await store.save([s], LAYOUT, _rows(1, 1.0), [2]) == [None]
        assert [r.start for r in await store.replies(s)] == [6]

    run(scenario())


def test_a_store_of_depth_one_keeps_no_older_replies_from_a_snapshot() -> None:
    async def scenario() -> None:
        store = MemoryStateStore(10, 1 << 30, 1, 30.0, clock=Clock())
        s = _session(step=3, replay=_reply(2, 3))
        await store.create(s, LAYOUT, None, older=[_reply(1, 2), _reply(0, 1)])
        assert [r.start for r in await store.replies(s)] == [2]

    run(scenario())


def test_sessions_report_their_own_owner_and_strangers_see_none() -> None:
    async def scenario() -> None:
        store = _store(Clock())
        sessions = {o: _session(owner=o) for o in (None, "a", "b", "c")}
        for s in sessions.values():
            await store.create(s, LAYOUT, None)
        for owner, s in sessions.items():
            assert (await store.get(s.id)).owner == owner
        assert await store.sessions_of("stranger") == []
        assert [s.id for s in await store.sessions_of("c")] == [sessions["c"].id]

    run(scenario())


@pytest.mark.parametrize(
    ("evict_idle_s", "idle", "evicted"),
    [(None, 4000.0, False), (-1.0, 4000.0, False), (0.5, 1.0, True), (10.0, 10.0, True)],
    ids=["default-off", "negative-off", "under-a-second", "exactly-at-the-limit"],
)
def test_eviction_is_off_by_default_and_takes_sessions_idle_for_the_limit(
    evict_idle_s: float | None, idle: float, evicted: bool
) -> None:
    async def scenario() -> None:
        clock, counted = Clock(), []
        kw: dict[str, Any] = {"max_sessions": 1, "on_evicted": counted.append}
        if evict_idle_s is not None:
            kw["evict_idle_s"] = evict_idle_s
        store = _store(clock, **kw)
        first = _session(idle_ttl_s=1e6, ttl_s=1e6)
        await store.create(first, LAYOUT, None)
        clock.now += idle
        second = _session(created_at=clock.now)
        if not evicted:
            with pytest.raises(Overloaded):
                await store.create(second, LAYOUT, None)
            assert (await store.get(first.id)).id == first.id
            return
        await store.create(second, LAYOUT, None)
        assert counted == [1]
        with pytest.raises(Gone):
            await store.get(first.id)

    run(scenario())


def test_sessions_expire_exactly_at_their_deadline_and_tombstones_end_at_theirs() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = _store(clock)
        idle, absolute = _session(), _session(ttl_s=10.0)
        for s in (idle, absolute):
            await store.create(s, LAYOUT, None)
        clock.now = 1015.0
        assert await store.sweep() == 1  # the absolute TTL, though used recently
        with pytest.raises(Gone):
            await store.get(absolute.id)
        clock.now = 1060.0  # idle_ttl_s after last use
        assert await store.sessions_of(None) == []
        with pytest.raises(Gone):
            await store.get(idle.id)
        clock.now = 1060.0 + 30.0  # the tombstone's own deadline
        with pytest.raises(NotFound):
            await store.get(idle.id)

    run(scenario())


def test_sweep_drops_only_tombstones_past_their_deadline_oldest_first() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = _store(clock)
        assert await store.sweep() == 0  # nothing live, no tombstones
        a, b = _session(), _session(created_at=1020.0)
        for s in (a, b):
            await store.create(s, LAYOUT, None)
        clock.now = 1060.0
        assert await store.sweep() == 1  # a: tombstone until 1090
        clock.now = 1080.0
        assert await store.sweep() == 1  # b: tombstone until 1110
        clock.now = 1100.0
        assert await store.sweep() == 0
        with pytest.raises(NotFound):
            await store.get(a.id)
        with pytest.raises(Gone):
            await store.get(b.id)

    run(scenario())


def test_tombstones_beyond_the_cap_drop_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "MAX_TOMBSTONES", 3)

    async def scenario() -> None:
        clock = Clock()
        store = _store(clock)
        sessions = [_session() for _ in range(5)]
        for s in sessions:
            await store.create(s, LAYOUT, None)
        clock.now = 1060.0
        assert await store.sweep() == 5
        for s in sessions[:2]:
            with pytest.raises(NotFound):
                await store.get(s.id)
        for s in sessions[2:]:
            with pytest.raises(Gone):
                await store.get(s.id)

    run(scenario())
