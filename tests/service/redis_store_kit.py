"""Helpers of the Redis store's mutation tests: stores on fresh prefixes of one real
redis-server, sessions, state rows and answers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from redis.asyncio import Redis
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import Replay, Session

LAYOUT = Layout(((2, 3), (2, 3)), 1, 2)


class Stores:
    """Stores on one fresh key prefix: each instance plays one replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = uuid.uuid4().hex[:8]
        self._opened: list[RedisStateStore | Redis] = []

    def run(self, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs the scenario, then closes every store and client it opened, failed or not
        (a connection left open would surface as a warning in some later test)."""

        async def go() -> None:
            try:
                await scenario()
            finally:
                for opened in self._opened:
                    await (
                        opened.close() if isinstance(opened, RedisStateStore) else opened.aclose()
                    )

        asyncio.run(go())

    def __call__(self, **kw: Any) -> RedisStateStore:
        options: dict[str, Any] = {
            "max_sessions": 100,
            "max_state_bytes": 1 << 20,
            "retry_after_s": 3,
            "tombstone_ttl_s": 60,
        }
        store = RedisStateStore(self.url, self.prefix, **{**options, **kw})
        self._opened.append(store)
        return store

    def raw(self) -> Redis:
        """A plain client, to look at (or damage) what the store wrote."""
        client = Redis.from_url(self.url)
        self._opened.append(client)
        return client

    def key(self, session_id: str) -> str:
        """The hash of a session on one untagged shard (the single-Redis layout)."""
        return f"{self.prefix}:s:{session_id}"


def session(sid: str = "", owner: str | None = None, idle: float = 60, ttl: float = 600) -> Session:
    now = time.time()
    return Session(sid, "m", "1", owner, 0, now, now, idle, ttl)


def rows(batch: int, seed: int = 0, layout: Layout = LAYOUT) -> StateRows:
    rng = np.random.default_rng(seed)
    state = layout.zeros(batch)
    for t in state.tensors:
        t[:] = rng.normal(size=t.shape)
    state.prev_x[:] = rng.normal(size=state.prev_x.shape)
    state.last_y[:] = rng.normal(size=state.last_y.shape)
    return state


def same_rows(a: StateRows, b: StateRows) -> bool:
    pairs = [*zip(a.tensors, b.tensors, strict=True), (a.prev_x, b.prev_x), (a.last_y, b.last_y)]
    return all(np.array_equal(x, y) for x, y in pairs)


def answer(start: int, steps: int = 2, seed: int = 0) -> Replay:
    outputs = np.random.default_rng(seed).normal(size=(steps, LAYOUT.n_outputs))
    return Replay(start, bytes([start % 256]) * 8, outputs)


def starts(replies: list[Replay]) -> list[int]:
    return [r.start for r in replies]
