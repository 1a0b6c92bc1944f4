"""RedisStateStore against a real redis-server: compare-and-set, TTLs and tombstones, caps
shared by two store instances (two replicas), batched round trips, binary encoding."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
from seqserve.service.errors import Conflict, Gone, NotFound, Overloaded, StepConflict, Unavailable
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Replay, Session

from scripts.launch import RedisServer, free_port

pytestmark = pytest.mark.e2e
T = TypeVar("T")
LAYOUT = Layout(((2, 3), (2, 3)), 1, 2)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("store"), aof=False).start()
    yield server
    server.stop()


class MakeStore:
    """Stores on one fresh key prefix: each instance plays one replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = uuid.uuid4().hex[:8]

    def __call__(self, **kw: Any) -> RedisStateStore:
        options: dict[str, Any] = {
            "max_sessions": 100,
            "max_state_bytes": 1 << 20,
            "retry_after_s": 3,
            "tombstone_ttl_s": 60,
        }
        return RedisStateStore(self.url, self.prefix, **{**options, **kw})


@pytest.fixture
def make_store(redis_server: RedisServer) -> MakeStore:
    return MakeStore(redis_server.url)


def session(sid: str | None = None, idle: float = 60, ttl: float = 600, **kw: Any) -> Session:
    now = time.time()
    return Session(sid or uuid.uuid4().hex, "m", "1", kw.get("owner"), 0, now, now, idle, ttl)


def rows(batch: int, seed: int = 0) -> StateRows:
    rng = np.random.default_rng(seed)
    state = LAYOUT.zeros(batch)
    for t in state.tensors:
        t[:] = rng.normal(size=t.shape)
    state.prev_x[:] = rng.normal(size=state.prev_x.shape)
    state.last_y[:] = rng.normal(size=state.last_y.shape)
    return state


def test_state_and_replay_round_trip_exactly(make_store: MakeStore) -> None:
    async def go() -> None:
        store = make_store()
        s = session(owner="alice")
        initial = rows(1, seed=1)
        await store.create(s, LAYOUT, initial)
        got = await store.get(s.id)
        assert (got.model, got.version, got.owner, got.step) == ("m", "1", "alice", 0)
        assert got.created_at == s.created_at
        loaded = await store.load([got], LAYOUT)
        for a, b in zip(loaded.tensors, initial.tensors, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.prev_x, initial.prev_x)
        got.step, got.replay = 3, Replay(0, b"d" * 16, np.arange(6.0).reshape(3, 2) / 7)
        assert await store.save([got], LAYOUT, rows(1, seed=2), [0]) == [None]
        again = await store.get(s.id)
        assert again.step == 3
        assert again.replay is not None
        np.testing.assert_array_equal(again.replay.outputs, got.replay.outputs)
        assert again.replay.digest == b"d" * 16
        await store.close()

    run(go())


def test_compare_and_set_lets_one_of_two_replicas_commit(make_store: MakeStore) -> None:
    async def go() -> None:
        a, b = make_store(), make_store()
        s = session()
        await a.create(s, LAYOUT, None)
        seen_a, seen_b = await a.get(s.id), await b.get(s.id)
        seen_a.step = seen_b.step = 2
        results = await asyncio.gather(
            a.save([seen_a], LAYOUT, rows(1, 1), [0]), b.save([seen_b], LAYOUT, rows(1, 2), [0])
        )
        errors = [r[0] for r in results]
        assert errors.count(None) == 1
        conflict = next(e for e in errors if e is not None)
        assert isinstance(conflict, StepConflict)
        assert conflict.extra["current_step"] == 2
        await a.close()
        await b.close()

    run(go())


def test_a_reset_and_restep_in_between_is_still_a_conflict(make_store: MakeStore) -> None:
    """ABA: the step index is back where a replica read it, but the state is not."""

    async def go() -> None:
        a, b = make_store(), make_store()
        s = session()
        await a.create(s, LAYOUT, None)
        stale = await a.get(s.id)
        moved = await b.get(s.id)
        moved.step = 2
        assert await b.save([moved], LAYOUT, rows(1, 1), [0]) == [None]
        back = await b.get(s.id)
        back.step = 0  # a reset
        assert await b.save([back], LAYOUT, LAYOUT.zeros(1), [2]) == [None]
        stale.step = 1
        [error] = await a.save([stale], LAYOUT, rows(1, 2), [0])
        assert isinstance(error, StepConflict)
        await a.close()
        await b.close()

    run(go())


def test_batched_save_reports_per_session_in_one_script_call(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    async def go() -> list[Any]:
        store = make_store()
        live = [session() for _ in range(3)]
        for s in live:
            await store.create(s, LAYOUT, None)
        await store.delete(live[2].id)
        doomed = session(idle=0.05)
        await store.create(doomed, LAYOUT, None)
        await asyncio.sleep(0.1)
        batch = [*live, doomed]
        state = await store.load(batch, LAYOUT)  # gone rows load as zeros
        for s in batch:
            s.step = 1
        with redis_server.client() as admin:
            before = admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
            errors = await store.save(batch, LAYOUT, state, [0, 5, 0, 0])
            after = admin.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert after - before == 1  # one round trip for the whole batch
        await store.close()
        return errors

    errors = run(go())
    assert errors[0] is None
    assert isinstance(errors[1], StepConflict)
    assert isinstance(errors[2], NotFound)
    assert isinstance(errors[3], Gone)


def test_idle_expiry_is_410_then_404_after_the_tombstone(make_store: MakeStore) -> None:
    async def go() -> None:
        # waits only ever run past a deadline; what must still hold after one (the tombstone)
        # gets seconds of slack, not tenths
        store = make_store(tombstone_ttl_s=2.0)
        s = session(idle=0.2)
        await store.create(s, LAYOUT, None)
        deleted = session()
        await store.create(deleted, LAYOUT, None)
        await store.delete(deleted.id)
        with pytest.raises(NotFound):  # deleted: never a 410
            await store.get(deleted.id)
        await asyncio.sleep(0.25)
        with pytest.raises(Gone) as gone:
            await store.get(s.id)
        assert gone.value.extra["reason"] == "expired"
        await asyncio.sleep(2.0)
        with pytest.raises(NotFound):
            await store.get(s.id)
        with pytest.raises(NotFound):
            await store.get("never-existed")
        await store.close()

    run(go())


def test_use_refreshes_idle_ttl_but_never_past_the_absolute_ttl(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    async def go() -> None:
        store = make_store()
        s = session(idle=5, ttl=8)
        key = f"{make_store.prefix}:s:{s.id}"
        await store.create(s, LAYOUT, None)
        with redis_server.client() as admin:
            assert 4000 < admin.pttl(key) <= 5000
            s.created_at -= 6  # as if created 6 s ago: 2 s of the absolute TTL are left
            s.last_used = time.time()
            await store.touch(s)
            assert admin.pttl(key) <= 2000  # the idle TTL alone would give 5 s
        await store.close()

    run(go())


def test_caps_hold_across_replicas_and_free_on_delete(make_store: MakeStore) -> None:
    async def go() -> None:
        a, b = make_store(max_sessions=2), make_store(max_sessions=2)
        first = session()
        await a.create(first, LAYOUT, None)
        await b.create(session(), LAYOUT, None)
        with pytest.raises(Overloaded) as full:
            await a.create(session(), LAYOUT, None)
        assert full.value.headers["Retry-After"] == "3"
        assert a.stats()[0] == 2
        await b.delete(first.id)
        await a.create(session(), LAYOUT, None)
        capped = make_store(max_state_bytes=3 * LAYOUT.nbytes)
        await capped.create(session(), LAYOUT, None)
        with pytest.raises(Overloaded, match="state memory cap"):
            await capped.create(session(), LAYOUT, None)
        for store in (a, b, capped):
            await store.close()

    run(go())


def test_eviction_at_the_cap_takes_the_least_recently_used_idle_session(
    make_store: MakeStore,
) -> None:
    async def go() -> None:
        evicted: list[int] = []
        # `recent` must stay under evict_idle_s until the end: a second of slack, not 0.1 s
        store = make_store(max_sessions=2, evict_idle_s=1.0, on_evicted=evicted.append)
        old, recent = session(), session()
        await store.create(old, LAYOUT, None)
        await asyncio.sleep(1.05)
        await store.create(recent, LAYOUT, None)
        await store.create(session(), LAYOUT, None)  # full: `old` is idle long enough
        assert evicted == [1]
        with pytest.raises(Gone) as gone:
            await store.get(old.id)
        assert gone.value.extra["reason"] == "evicted"
        with pytest.raises(Overloaded):  # the rest were used too recently
            await store.create(session(), LAYOUT, None)
        await store.close()

    run(go())


def test_sweep_counts_each_expiry_once_across_replicas(make_store: MakeStore) -> None:
    async def go() -> list[int]:
        counted: list[int] = []
        a = make_store(on_expired=counted.append)
        b = make_store(on_expired=counted.append)
        for _ in range(3):
            await a.create(session(idle=0.05), LAYOUT, None)
        await a.create(session(), LAYOUT, None)
        await asyncio.sleep(0.1)
        await asyncio.gather(a.sweep(), b.sweep())
        assert a.stats() == (1, LAYOUT.nbytes) or b.stats() == (1, LAYOUT.nbytes)
        await a.close()
        await b.close()
        return counted

    assert sum(run(go())) == 3


def test_owner_listing_and_create_idempotence(make_store: MakeStore) -> None:
    async def go() -> None:
        store = make_store()
        mine = [session(owner="alice") for _ in range(2)]
        for s in [*mine, session(owner="bob"), session()]:
            await store.create(s, LAYOUT, None)
        listed = await store.sessions_of("alice")
        assert sorted(s.id for s in listed) == sorted(s.id for s in mine)
        assert len(await store.sessions_of(None)) == 4
        await store.create(mine[0], LAYOUT, None)  # a retried create: no double counting
        assert store.stats() == (4, 4 * LAYOUT.nbytes)
        clash = session(mine[0].id)
        clash.created_at += 1
        with pytest.raises(Conflict):  # a different session under a taken id
            await store.create(clash, LAYOUT, None)
        await store.close()

    run(go())


def test_unreachable_redis_is_503() -> None:
    async def go() -> None:
        store = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0", "x", 1, 1, 7, 1)
        with pytest.raises(Unavailable) as down:
            await store.get("anything")
        assert down.value.headers["Retry-After"] == "7"
        with pytest.raises(Unavailable):
            await store.ping()
        await store.close()

    run(go())


def test_ids_from_before_a_data_loss_are_410_others_404(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    """Redis lost its data (restarted without persistence): every key under the prefix is
    gone, the epoch key with them; the epoch in a fresh id tells its session was lost."""

    async def go() -> None:
        store = make_store()
        fresh, given = session(), session("v2-given")
        fresh.id = ""  # the store issues the id
        await store.create(fresh, LAYOUT, None)
        await store.create(given, LAYOUT, None)
        read = await store.get(fresh.id)
        with redis_server.client() as admin:
            admin.delete(*admin.keys(f"{make_store.prefix}:*"))
        with pytest.raises(Gone) as lost:
            await store.get(fresh.id)
        assert lost.value.extra["reason"] == "store-lost"
        assert "the state store lost its data" in lost.value.detail
        read.step = 1
        [error] = await store.save([read], LAYOUT, rows(1), [0])
        assert isinstance(error, Gone)
        with pytest.raises(NotFound):  # a caller-given id carries no epoch: 404 as before
            await store.get(given.id)
        again = session()
        again.id = ""
        await store.create(again, LAYOUT, None)  # a new epoch begins
        assert again.id.split(".")[1] != fresh.id.split(".")[1]
        never = ("A" if again.id[0] != "A" else "B") + again.id[1:]
        with pytest.raises(NotFound):  # this epoch, never issued
            await store.get(never)
        with pytest.raises(Gone):
            await store.get(fresh.id)
        await store.close()

    run(go())
