"""The StateStore contract (written on the class in service/state/store.py), run on both
stores: the in-process MemoryStateStore and RedisStateStore on a real redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from seqserve.service.errors import Conflict, Gone, NotFound, Overloaded, StepConflict
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Replay, Session, StateStore

from scripts.launch import RedisServer

pytestmark = pytest.mark.e2e
LAYOUT = Layout(((2, 3), (1, 4)), 2, 1)
OPTIONS: dict[str, Any] = {"retry_after_s": 3, "tombstone_ttl_s": 60}
OpenStore = Callable[..., Any]  # (**caps) -> async context manager of a StateStore


@pytest.fixture(scope="module")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("contract"), aof=False).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def open_store(request: pytest.FixtureRequest) -> OpenStore:
    """Opens a fresh, empty store of the parametrized kind (Redis: on a new key prefix)."""

    @asynccontextmanager
    async def opened(
        max_sessions: int = 100, max_state_bytes: int = 1 << 20, **extra: Any
    ) -> AsyncIterator[StateStore]:
        caps = {"max_sessions": max_sessions, "max_state_bytes": max_state_bytes, **OPTIONS}
        caps.update(extra)
        store: StateStore
        if request.param == "memory":
            store = MemoryStateStore(**caps)
        else:
            url = request.getfixturevalue("redis_server").url
            store = RedisStateStore(url, uuid.uuid4().hex[:8], **caps)
        try:
            yield store
        finally:
            await store.close()

    return opened


def shared(store: StateStore) -> bool:
    """Shared by processes: such a store must compare-and-set (see the contract)."""
    return isinstance(store, RedisStateStore)


def run(
    open_store: OpenStore, scenario: Callable[[StateStore], Awaitable[None]], **caps: Any
) -> None:
    async def go() -> None:
        async with open_store(**caps) as store:
            await scenario(store)

    asyncio.run(go())


def new(idle: float = 60, owner: str | None = None) -> Session:
    now = time.time()
    return Session("", "m", "1", owner, 0, now, now, idle, 600)


def rows(seed: int) -> StateRows:
    rng = np.random.default_rng(seed)
    state = LAYOUT.zeros(1)
    for t in state.tensors:
        t[:] = rng.normal(size=t.shape)
    state.prev_x[:] = rng.normal(size=state.prev_x.shape)
    state.last_y[:] = rng.normal(size=state.last_y.shape)
    return state


def same(a: StateRows, b: StateRows) -> None:
    for x, y in zip(
        [*a.tensors, a.prev_x, a.last_y], [*b.tensors, b.prev_x, b.last_y], strict=True
    ):
        np.testing.assert_array_equal(x, y)


def test_create_assigns_an_unguessable_id_and_get_returns_the_session(
    open_store: OpenStore,
) -> None:
    async def scenario(store: StateStore) -> None:
        a, b = new(owner="alice"), new()
        await store.create(a, LAYOUT, rows(1))
        await store.create(b, LAYOUT, None)
        assert a.id
        assert b.id not in ("", a.id)
        assert len(a.id.split(".")[0]) >= 22  # >= 128 random bits, URL-safe base64
        got = await store.get(a.id)
        assert (got.id, got.model, got.version, got.owner, got.step) == (a.id, "m", "1", "alice", 0)
        assert got.created_at == a.created_at
        same(await store.load([got], LAYOUT), rows(1))
        same(await store.load([await store.get(b.id)], LAYOUT), LAYOUT.zeros(1))
        assert [s.id for s in await store.sessions_of("alice")] == [a.id]
        given = Session("v2-given", "m", "1", None, 0, time.time(), time.time(), 60, 600)
        await store.create(given, LAYOUT, None)  # an adapter's own id (V2 sequences)
        assert given.id == "v2-given"
        assert (await store.get("v2-given")).step == 0
        with pytest.raises(Conflict):  # a given id must not name a live session
            await store.create(Session("v2-given", "m", "1", None, 0, 1, 1, 60, 600), LAYOUT, None)
        assert store.stats() == (3, 3 * LAYOUT.nbytes)
        with pytest.raises(NotFound):
            await store.get("never-issued")

    run(open_store, scenario)


def test_what_get_returns_is_what_load_and_save_take(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        s = new()
        await store.create(s, LAYOUT, None)
        for k in range(3):  # each round: read, load, save with the step index read
            seen = await store.get(s.id)
            assert seen.step == 2 * k
            if k:
                same(await store.load([seen], LAYOUT), rows(k))
            before, seen.step = seen.step, seen.step + 2
            seen.replay = Replay(before, bytes([k]) * 16, np.full((2, 1), k / 3))
            assert await store.save([seen], LAYOUT, rows(k + 1), [before]) == [None]
            same(await store.load([seen], LAYOUT), rows(k + 1))  # the same object, after save
        last = await store.get(s.id)
        assert last.step == 6
        assert last.replay is not None
        assert (last.replay.start, last.replay.digest) == (4, bytes([2]) * 16)
        np.testing.assert_array_equal(last.replay.outputs, np.full((2, 1), 2 / 3))

    run(open_store, scenario)


def test_a_stale_read_does_not_commit_in_a_shared_store(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        s = new()
        await store.create(s, LAYOUT, None)
        stale, fresh = await store.get(s.id), await store.get(s.id)
        fresh.step = 2
        assert await store.save([fresh], LAYOUT, rows(1), [0]) == [None]
        if shared(store):  # in one process the engine's per-session lock rules this out
            stale.step = 1
            [error] = await store.save([stale], LAYOUT, rows(2), [0])
            assert isinstance(error, StepConflict)
            assert error.extra["current_step"] == 2
        now = await store.get(s.id)
        assert now.step == 2
        same(await store.load([now], LAYOUT), rows(1))

    run(open_store, scenario)


def test_delete_frees_and_a_session_ended_mid_step_is_not_written(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        keep, doomed = new(), new()
        await store.create(keep, LAYOUT, None)
        await store.create(doomed, LAYOUT, None)
        read = await store.get(doomed.id)
        await store.delete(doomed.id)
        assert store.stats() == (1, LAYOUT.nbytes)
        with pytest.raises(NotFound):  # deleted: 404, never 410
            await store.get(doomed.id)
        with pytest.raises(NotFound):
            await store.delete(doomed.id)
        read.step = 1
        [error] = await store.save([read], LAYOUT, rows(1), [0])
        assert isinstance(error, (NotFound, Gone))
        with pytest.raises(NotFound):  # and the save did not bring it back
            await store.get(doomed.id)
        assert store.stats() == (1, LAYOUT.nbytes)

    run(open_store, scenario)


def test_touch_persists_last_used_and_sweep_buries_the_expired(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        live, brief = new(), new(idle=0.05)
        await store.create(live, LAYOUT, None)
        await store.create(brief, LAYOUT, None)
        seen = await store.get(live.id)
        seen.last_used += 5
        await store.touch(seen)
        assert (await store.get(live.id)).last_used == seen.last_used
        await asyncio.sleep(0.1)
        assert await store.sweep() == 1
        assert store.stats() == (1, LAYOUT.nbytes)
        with pytest.raises(Gone) as gone:
            await store.get(brief.id)
        assert gone.value.extra["reason"] == "expired"
        assert [s.id for s in await store.sessions_of(None)] == [live.id]

    run(open_store, scenario)


def test_caps_refuse_with_retry_after(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        await store.create(new(), LAYOUT, None)
        with pytest.raises(Overloaded) as full:
            await store.create(new(), LAYOUT, None)
        assert full.value.headers["Retry-After"] == "3"
        assert store.stats() == (1, LAYOUT.nbytes)

    run(open_store, scenario, max_sessions=1)


def test_the_answers_of_the_last_n_requests_are_kept(open_store: OpenStore) -> None:
    """replay_depth 3: each commit with a new answer keeps it and the two before it (one- and
    several-timestep answers alike); a reset (no answer) drops them all."""

    async def scenario(store: StateStore) -> None:
        s = new()
        await store.create(s, LAYOUT, None)
        answers = []
        for k, length in enumerate([1, 2, 1, 3, 1]):
            got = await store.get(s.id)
            answer = Replay(got.step, bytes([k]) * 16, np.full((length, 1), k + 0.5))
            answers.append(answer)
            before, got.replay, got.step = got.step, answer, got.step + length
            assert await store.save([got], LAYOUT, rows(k), [before]) == [None]
        got = await store.get(s.id)
        kept = await store.replies(got)
        assert [r.start for r in kept] == [a.start for a in answers[::-1][:3]] == [7, 4, 3]
        for mine, want in zip(kept, answers[::-1], strict=False):
            assert mine.digest == want.digest
            np.testing.assert_array_equal(mine.outputs, want.outputs)
        got.replay, got.step = None, 0  # a reset
        assert await store.save([got], LAYOUT, LAYOUT.zeros(1), [8]) == [None]
        assert await store.replies(await store.get(s.id)) == []

    run(open_store, scenario, replay_depth=3)
