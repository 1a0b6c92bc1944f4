"""The Redis state store: sessions shared by every replica, committed by compare-and-set.

The layout and the atomic scripts are in `redis_lua.py`. A session's hash expires by itself
(PEXPIRE set to the time left under both TTLs, refreshed on each use); a tombstone key that
outlives it by `tombstone_ttl_s` keeps an expired id answering 410 rather than 404.

A step costs two round trips: get() (one HGETALL: metadata, state row and revision, read
atomically) and the batch's SAVE script, a compare-and-set on the step index and revision
that get() read. load() reuses the row get() read, so a batch needs no third trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from seqserve.service.errors import Gone, NotFound, SeqServeError
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state import redis_lua
from seqserve.service.state.packing import pack_replay, pack_rows, unpack_rows
from seqserve.service.state.redis_codec import (
    META,
    connect,
    decode_session,
    missing,
    ms,
    reachable,
    refusal,
    save_error,
)
from seqserve.service.state.store import Session, StateStore, fresh_id

_SWEEP_BATCH = 1000
_LIST_BATCH = 500
_FRESH = 4096  # sessions whose get() is remembered for the load()/save() that follow


class RedisStateStore(StateStore):
    def __init__(
        self,
        url: str,
        prefix: str,
        max_sessions: int,
        max_state_bytes: int,
        retry_after_s: int,
        tombstone_ttl_s: float,
        evict_idle_s: float = 0.0,
        on_expired: Callable[[int], None] = lambda n: None,
        on_evicted: Callable[[int], None] = lambda n: None,
        max_connections: int = 1024,
    ) -> None:
        self._redis = connect(url, max_connections)
        self._p = prefix
        self._max_sessions = max_sessions
        self._max_bytes = max_state_bytes
        self._retry_after = retry_after_s
        self._tomb_ms = ms(tombstone_ttl_s)
        self._evict_ms = ms(evict_idle_s)
        self._on_expired = on_expired
        self._on_evicted = on_evicted
        self._totals = (0, 0)
        # what get() read, for the load() and save() that usually follow: id -> (step, x)
        self._rows: dict[str, tuple[int, bytes]] = {}  # the state row at that step
        self._revs: dict[str, tuple[int, bytes]] = {}  # the commit count at that step
        scripts = (redis_lua.CREATE, redis_lua.SAVE, redis_lua.TOUCH, redis_lua.DELETE)
        self._create, self._save, self._touch, self._delete = map(
            self._redis.register_script, scripts
        )
        self._sweep = self._redis.register_script(redis_lua.SWEEP)

    async def ping(self) -> None:
        with reachable(self._retry_after):
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, session_id: str) -> str:
        return f"{self._p}:s:{session_id}"

    def _expiry(self, session: Session, now: float) -> list[Any]:
        """[time left in ms (PEXPIRE), deadline in epoch ms (P:live score)]."""
        return [ms(session.expires_at - now), ms(session.expires_at)]

    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        session.id = session.id or fresh_id()
        rows = pack_rows(state if state is not None else layout.zeros(1), layout)
        now = time.time()
        meta = META.pack(session.created_at, session.idle_ttl_s, session.ttl_s)
        replay = pack_replay(session.replay) if session.replay is not None else b""
        evict_before = ms(now) - self._evict_ms if self._evict_ms > 0 else 0
        args: list[Any] = [self._p, session.id, ms(now), self._max_sessions, self._max_bytes]
        args += [layout.nbytes, session.owner or "", session.model, session.version, meta]
        args += [repr(session.last_used), session.step, rows[0], replay]
        args += [*self._expiry(session, now), self._tomb_ms, evict_before]
        with reachable(self._retry_after):
            created, evicted, expired, *totals = await self._create(args=args)
        self._count(expired, evicted, totals)
        if not created:
            raise refusal(
                totals[2], session.id, self._max_sessions, self._max_bytes, self._retry_after
            )

    def _count(self, expired: int, evicted: int, totals: list[Any]) -> None:
        if expired:
            self._on_expired(expired)
        if evicted:
            self._on_evicted(evicted)
        self._totals = (int(totals[0]), int(totals[1]))

    async def get(self, session_id: str) -> Session:
        with reachable(self._retry_after):
            # bytes throughout: the client never decodes (decode_responses is off)
            fields = cast(dict[bytes, bytes], await self._redis.hgetall(self._key(session_id)))
            tomb = None if fields else await self._redis.get(f"{self._p}:t:{session_id}")
        if not fields:
            raise missing(session_id, tomb)
        session = decode_session(session_id, fields)
        if session.expires_at <= time.time():
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        if len(self._revs) >= _FRESH:
            self._rows.clear()
            self._revs.clear()
        self._rows[session_id] = (session.step, fields[b"state"])
        self._revs[session_id] = (session.step, fields.get(b"rev", b""))
        return session

    async def sessions_of(self, owner: str | None, limit: int | None = None) -> list[Session]:
        now = time.time()
        with reachable(self._retry_after):
            if owner is None:
                raw_ids = await self._redis.zrangebyscore(f"{self._p}:live", ms(now), "+inf")
            else:
                raw_ids = sorted(await self._redis.smembers(f"{self._p}:own:{owner}"))
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids][:limit]
            found: list[Session] = []
            for at in range(0, len(ids), _LIST_BATCH):
                chunk = ids[at : at + _LIST_BATCH]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for session_id in chunk:
                        pipe.hgetall(self._key(session_id))
                    replies = await pipe.execute()
                found += [decode_session(i, f) for i, f in zip(chunk, replies, strict=True) if f]
        return [s for s in found if (owner is None or s.owner == owner) and s.expires_at > now]

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """Rows in at most one round trip: a row that get() read with the session's current
        step is that step's state (one atomic HGETALL), so it is used as is. A row gone
        meanwhile loads as zeros (save() then refuses it); a lone one raises its 404/410."""
        blobs: list[bytes | None] = []
        for session in sessions:
            step, row = self._rows.pop(session.id, (-1, b""))
            blobs.append(row if step == session.step else None)
        uncached = [i for i, blob in enumerate(blobs) if blob is None]
        if uncached:
            with reachable(self._retry_after):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for i in uncached:
                        pipe.hget(self._key(sessions[i].id), "state")
                    for i, blob in zip(uncached, await pipe.execute(), strict=True):
                        blobs[i] = blob
        if len(sessions) == 1 and blobs[0] is None:
            await self.get(sessions[0].id)
            raise Gone(f"session {sessions[0].id} ended", session_id=sessions[0].id)
        zeros = pack_rows(layout.zeros(1), layout)[0]
        return unpack_rows([b if b is not None else zeros for b in blobs], layout)

    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        rows = pack_rows(state, layout)
        now = time.time()
        args: list[Any] = [self._p, ms(now), self._tomb_ms]
        for session, row, before in zip(sessions, rows, expected, strict=True):
            replay = pack_replay(session.replay) if session.replay is not None else b""
            read_at, rev = self._revs.pop(session.id, (-1, b""))
            args += [session.id, before, session.step, repr(session.last_used), row, replay]
            args += [*self._expiry(session, now), rev if read_at == before else b""]
        with reachable(self._retry_after):
            codes = await self._save(args=args)
        return [save_error(s.id, code) for s, code in zip(sessions, codes, strict=True)]

    async def touch(self, session: Session) -> None:
        now = time.time()
        args: list[Any] = [self._p, ms(now), self._tomb_ms, session.id, repr(session.last_used)]
        with reachable(self._retry_after):
            await self._touch(args=[*args, *self._expiry(session, now)])

    async def delete(self, session_id: str) -> None:
        with reachable(self._retry_after):
            found, *totals = await self._delete(args=[self._p, session_id])
        self._totals = (int(totals[0]), int(totals[1]))
        if not found:
            raise NotFound(f"no session {session_id}", session_id=session_id)

    async def sweep(self) -> int:
        total = 0
        while True:
            with reachable(self._retry_after):
                args: list[Any] = [self._p, ms(time.time()), _SWEEP_BATCH]
                reply = await self._sweep(args=args)
            expired = int(reply[0])
            self._count(expired, 0, reply[1:])
            total += expired
            if expired < _SWEEP_BATCH:
                return total

    def stats(self) -> tuple[int, int]:
        """Shared totals as of this replica's last create, delete or sweep."""
        return self._totals
