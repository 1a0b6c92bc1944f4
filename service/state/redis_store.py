"""The Redis state store: sessions shared by every replica, committed by compare-and-set.

The layout and the atomic scripts are in `redis_lua.py`. A session's hash expires by itself
(PEXPIRE set to the time left under both TTLs, refreshed on each use); a tombstone key that
outlives it by `tombstone_ttl_s` keeps an expired id answering 410 rather than 404.

A step costs two round trips: get() (one HGETALL: metadata, state row and revision, read
atomically) and the batch's SAVE script, a compare-and-set on the step index and revision
that get() read. get() returns them on the session (a RedisSession), and load() and save()
take them from there: load() needs no third trip, and nothing is kept between calls.

Fresh session ids end in the store's epoch (see redis_lua), so after Redis lost its data
they answer 410 rather than 404. Redis refusing writes (maxmemory, a read-only replica) is
a 503 with Retry-After; delete and sweep still work on a full Redis and free its memory.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, cast

from seqserve.service.errors import Gone, NotFound, SeqServeError
from seqserve.service.runtime.layout import Layout, StateRows
from seqserve.service.state import redis_lua
from seqserve.service.state.packing import pack_replay, pack_rows, unpack_rows
from seqserve.service.state.redis_codec import (
    META,
    RedisSession,
    connect,
    decode_session,
    fresh_parts,
    missing,
    ms,
    reachable,
    refusal,
    save_error,
)
from seqserve.service.state.store import Session, StateStore

_SWEEP_BATCH = 1000
_LIST_BATCH = 500


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
        scripts = (redis_lua.CREATE, redis_lua.SAVE, redis_lua.TOUCH, redis_lua.DELETE)
        self._create, self._save, self._touch, self._delete = map(
            self._redis.register_script, scripts
        )
        self._sweep = self._redis.register_script(redis_lua.SWEEP)

    async def ping(self) -> None:
        """Reachable and taking writes: DEL is a write a read-only replica refuses, yet one
        that a full Redis still takes (a full store stays ready: deletes free it)."""
        with reachable(self._retry_after):
            await self._redis.delete(f"{self._p}:probe")

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, session_id: str) -> str:
        return f"{self._p}:s:{session_id}"

    def _expiry(self, session: Session, now: float) -> list[Any]:
        """[time left in ms (PEXPIRE), deadline in epoch ms (P:live score)]."""
        return [ms(session.expires_at - now), ms(session.expires_at)]

    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        rows = pack_rows(state if state is not None else layout.zeros(1), layout)
        now = time.time()
        meta = META.pack(session.created_at, session.idle_ttl_s, session.ttl_s)
        replay = pack_replay(session.replay) if session.replay is not None else b""
        evict_before = ms(now) - self._evict_ms if self._evict_ms > 0 else 0
        args: list[Any] = [self._p, session.id, ms(now), self._max_sessions, self._max_bytes]
        args += [layout.nbytes, session.owner or "", session.model, session.version, meta]
        args += [repr(session.last_used), session.step, rows[0], replay]
        args += [*self._expiry(session, now), self._tomb_ms, evict_before, *fresh_parts()]
        with reachable(self._retry_after):
            created, evicted, expired, n, nbytes, sid, *why = await self._create(args=args)
        session.id = sid.decode()
        self._count(expired, evicted, [n, nbytes])
        if not created:
            raise refusal(
                why[0], session.id, self._max_sessions, self._max_bytes, self._retry_after
            )

    def _count(self, expired: int, evicted: int, totals: list[Any]) -> None:
        if expired:
            self._on_expired(expired)
        if evicted:
            self._on_evicted(evicted)
        self._totals = (int(totals[0]), int(totals[1]))

    async def get(self, session_id: str) -> RedisSession:
        with reachable(self._retry_after):
            # bytes throughout: the client never decodes (decode_responses is off)
            fields = cast(dict[bytes, bytes], await self._redis.hgetall(self._key(session_id)))
            if not fields:
                tomb, epoch = await self._redis.mget(self._p + ":t:" + session_id, self._epoch)
                raise missing(session_id, tomb, epoch)
        session = decode_session(session_id, fields)
        if session.expires_at <= time.time():
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        return session

    @property
    def _epoch(self) -> str:
        return f"{self._p}:epoch"

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
        blobs: list[bytes | None] = [
            s.read_state if isinstance(s, RedisSession) and s.read_step == s.step else None
            for s in sessions
        ]
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
        # a tag per call: a retry of this call (its reply lost) recognises its own commit
        args: list[Any] = [self._p, ms(now), self._tomb_ms, secrets.token_bytes(12)]
        for session, row, before in zip(sessions, rows, expected, strict=True):
            replay = pack_replay(session.replay) if session.replay is not None else b""
            rev = _read_rev(session, before)
            args += [session.id, before, session.step, repr(session.last_used), row, replay]
            args += [*self._expiry(session, now), rev]
        with reachable(self._retry_after):
            codes = await self._save(args=args)
            lost = any(code == -3 for code in codes)
            epoch = cast(bytes | None, await self._redis.get(self._epoch)) if lost else None
        for session, row, before, code in zip(sessions, rows, expected, codes, strict=True):
            if code == -1 and isinstance(session, RedisSession):  # what Redis now holds
                rev = _read_rev(session, before)
                session.read_rev = str(int(rev) + 1).encode() if rev else b""
                session.read_step, session.read_state = session.step, row
        return [save_error(s.id, code, epoch) for s, code in zip(sessions, codes, strict=True)]

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


def _read_rev(session: Session, before: int) -> bytes:
    """The revision to compare and set on: the one get() read, if read at step `before`;
    else b"" (the step index alone is compared)."""
    if isinstance(session, RedisSession) and session.read_step == before:
        return session.read_rev
    return b""
