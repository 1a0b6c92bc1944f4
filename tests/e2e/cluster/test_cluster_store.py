"""The store on a real 3-master cluster: the StateStore contract as on one node, and what is
global on one node (caps, listing by owner, totals) keeping its meaning across shards."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from seqserve.service.errors import Overloaded, Unavailable
from seqserve.service.state.redis_keys import Shards
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Session, StateStore

from scripts.launch import RedisClusterNodes
from tests.e2e.replicas.test_store_contract import (  # the contract, run here on a cluster
    LAYOUT,
    OPTIONS,
    OpenStore,
    new,
    test_a_stale_read_does_not_commit_in_a_shared_store,
    test_caps_refuse_with_retry_after,
    test_create_assigns_an_unguessable_id_and_get_returns_the_session,
    test_delete_frees_and_a_session_ended_mid_step_is_not_written,
    test_touch_persists_last_used_and_sweep_buries_the_expired,
    test_what_get_returns_is_what_load_and_save_take,
)

pytestmark = pytest.mark.e2e
CONTRACT = (  # collected by pytest here too, with this module's open_store
    test_caps_refuse_with_retry_after,
    test_create_assigns_an_unguessable_id_and_get_returns_the_session,
    test_delete_frees_and_a_session_ended_mid_step_is_not_written,
    test_a_stale_read_does_not_commit_in_a_shared_store,
    test_touch_persists_last_used_and_sweep_buries_the_expired,
    test_what_get_returns_is_what_load_and_save_take,
)


@pytest.fixture
def open_store(cluster: RedisClusterNodes) -> OpenStore:
    """A fresh store on the cluster (a new prefix), found from one node's URL."""

    @asynccontextmanager
    async def opened(
        max_sessions: int = 100, max_state_bytes: int = 1 << 20
    ) -> AsyncIterator[StateStore]:
        caps = {"max_sessions": max_sessions, "max_state_bytes": max_state_bytes, **OPTIONS}
        store = RedisStateStore(cluster.url, uuid.uuid4().hex[:8], **caps)
        try:
            yield store
        finally:
            await store.close()

    return opened


def _go(open_store: OpenStore, scenario: Any, **caps: Any) -> None:
    async def go() -> None:
        async with open_store(**caps) as store:
            await scenario(store)

    asyncio.run(go())


def test_fresh_sessions_fill_the_cap_exactly_across_shards(open_store: OpenStore) -> None:
    """7 sessions over 32 shards (most of which admit none): all 7 admitted, the 8th is 429,
    and the totals are the sum over the shards."""

    async def scenario(store: StateStore) -> None:
        made = [await _created(store) for _ in range(7)]
        with pytest.raises(Overloaded):
            await store.create(new(), LAYOUT, None)
        assert store.stats() == (7, 7 * LAYOUT.nbytes)
        await store.delete(made[0].id)
        await store.create(new(), LAYOUT, None)  # room again
        assert store.stats()[0] == 7

    _go(open_store, scenario, max_sessions=7)


def test_a_callers_id_lives_in_its_own_shard_so_its_cap_is_that_shards_share(
    open_store: OpenStore,
) -> None:
    """The documented bound: an id chosen by the caller is refused once its shard holds its
    share (max_sessions / shards, rounded), even with room elsewhere."""

    async def scenario(store: StateStore) -> None:
        shards = Shards("x", 32, tagged=True)
        ids = [f"seq-{n}" for n in range(200)]
        same_shard = [i for i in ids if shards.of(i) == shards.of(ids[0])][:3]
        for sid in same_shard[:2]:  # each shard's share: 64 // 32 = 2
            await store.create(_named(sid), LAYOUT, None)
        with pytest.raises(Overloaded):
            await store.create(_named(same_shard[2]), LAYOUT, None)
        other = next(i for i in ids if shards.of(i) != shards.of(ids[0]))
        await store.create(_named(other), LAYOUT, None)

    _go(open_store, scenario, max_sessions=64)


@pytest.mark.parametrize("wait", [0, 1])
def test_a_commit_no_replica_acknowledged_is_a_503_with_wait(
    cluster: RedisClusterNodes, wait: int
) -> None:
    """With WAIT 1, a step whose replica is frozen (SIGSTOP) is not acknowledged: Unavailable
    (503); the retry once the replica is back is told "committed" by the tag, or applied.
    With WAIT 0 the same commit is acknowledged at once: the master alone holds it."""

    async def scenario() -> None:
        store = RedisStateStore(
            cluster.url, uuid.uuid4().hex[:8], 100, 1 << 20, wait_replicas=wait,
            wait_timeout_ms=300, **OPTIONS,
        )  # fmt: skip
        try:
            session = await _created(store)
            got = await store.get(session.id)
            _, replicas = cluster.serving(f"{store._key(session.id)}")
            got.step = 1
            state = await store.load([got], LAYOUT)
            cluster.signal(replicas[0], signal.SIGSTOP)
            try:
                if wait:
                    with pytest.raises(Unavailable) as refused:
                        await store.save([got], LAYOUT, state, [0])
                    assert refused.value.headers["Retry-After"] == "3"
                else:
                    assert await store.save([got], LAYOUT, state, [0]) == [None]
            finally:
                cluster.signal(replicas[0], signal.SIGCONT)
            assert (await store.get(session.id)).step == 1  # the master has it either way
        finally:
            await store.close()

    asyncio.run(scenario())


def test_listing_by_owner_reads_only_that_owners_index(open_store: OpenStore) -> None:
    async def scenario(store: StateStore) -> None:
        mine = {(await _created(store, owner="alice")).id for _ in range(12)}
        theirs = {(await _created(store, owner="bob")).id for _ in range(3)}
        assert {s.id for s in await store.sessions_of("alice")} == mine
        assert {s.id for s in await store.sessions_of("bob")} == theirs
        assert len(await store.sessions_of("alice", limit=5)) == 5
        gone = sorted(mine)[0]
        await store.delete(gone)
        assert {s.id for s in await store.sessions_of("alice")} == mine - {gone}
        assert {s.id for s in await store.sessions_of(None)} == (mine | theirs) - {gone}

    _go(open_store, scenario)


async def _created(store: StateStore, owner: str | None = None) -> Session:
    session = new(owner=owner)
    await store.create(session, LAYOUT, None)
    return session


def _named(session_id: str) -> Session:
    now = time.time()
    return Session(session_id, "m", "1", None, 0, now, now, 60, 600)
