"""The Redis state store: sessions shared by every replica, committed by compare-and-set.

The layout and the atomic scripts are in `redis_lua.py`. A session's hash expires by itself
(PEXPIRE set to the time left under both TTLs, refreshed on each use); a tombstone key that
outlives it by `tombstone_ttl_s` keeps an expired id answering 410 rather than 404.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import (
    Conflict,
    Gone,
    NotFound,
    Overloaded,
    SeqServeError,
    StepConflict,
    Unavailable,
)
from service.state import redis_lua
from service.state.packing import pack_replay, pack_rows, unpack_replay, unpack_rows
from service.state.store import Layout, Session, StateRows, StateStore, fresh_id

_META = struct.Struct("<ddd")  # created_at, idle_ttl_s, ttl_s
_SWEEP_BATCH = 1000
_LIST_BATCH = 500


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


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
        max_connections: int = 64,
    ) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=5,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2),
        )
        self._redis = Redis.from_pool(pool)
        self._p = prefix
        self._max_sessions = max_sessions
        self._max_bytes = max_state_bytes
        self._retry_after = retry_after_s
        self._tomb_ms = _ms(tombstone_ttl_s)
        self._evict_ms = _ms(evict_idle_s)
        self._on_expired = on_expired
        self._on_evicted = on_evicted
        self._totals = (0, 0)
        scripts = (redis_lua.CREATE, redis_lua.SAVE, redis_lua.TOUCH, redis_lua.DELETE)
        self._create, self._save, self._touch, self._delete = map(
            self._redis.register_script, scripts
        )
        self._sweep = self._redis.register_script(redis_lua.SWEEP)

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Redis being down or restarting is a 503 with Retry-After, not a 500."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise Unavailable(
                "the session store (Redis) is unreachable; retry shortly", self._retry_after
            ) from exc

    async def ping(self) -> None:
        with self._reachable():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, session_id: str) -> str:
        return f"{self._p}:s:{session_id}"

    def _expiry(self, session: Session, now: float) -> list[Any]:
        """[time left in ms (PEXPIRE), deadline in epoch ms (P:live score)]."""
        return [_ms(session.expires_at - now), _ms(session.expires_at)]

    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        session.id = session.id or fresh_id()
        rows = pack_rows(state if state is not None else layout.zeros(1), layout)
        now = time.time()
        meta = _META.pack(session.created_at, session.idle_ttl_s, session.ttl_s)
        replay = pack_replay(session.replay) if session.replay is not None else b""
        evict_before = _ms(now) - self._evict_ms if self._evict_ms > 0 else 0
        args: list[Any] = [self._p, session.id, _ms(now), self._max_sessions, self._max_bytes]
        args += [layout.nbytes, session.owner or "", session.model, session.version, meta]
        args += [repr(session.last_used), session.step, rows[0], replay]
        args += [*self._expiry(session, now), self._tomb_ms, evict_before]
        with self._reachable():
            created, evicted, expired, *totals = await self._create(args=args)
        self._count(expired, evicted, totals)
        if not created:
            why = totals[2].decode()
            if why == "exists":
                raise Conflict(f"session {session.id} already exists", session_id=session.id)
            detail = (
                f"session cap reached ({self._max_sessions} live sessions)"
                if why == "sessions"
                else f"state memory cap reached ({self._max_bytes} bytes)"
            )
            raise Overloaded(
                detail,
                self._retry_after,
                max_sessions=self._max_sessions,
                max_state_bytes=self._max_bytes,
            )

    def _count(self, expired: int, evicted: int, totals: list[Any]) -> None:
        if expired:
            self._on_expired(expired)
        if evicted:
            self._on_evicted(evicted)
        self._totals = (int(totals[0]), int(totals[1]))

    def _decode(self, session_id: str, fields: dict[bytes, bytes]) -> Session:
        created_at, idle_ttl_s, ttl_s = _META.unpack(fields[b"meta"])
        replay = fields.get(b"replay")
        return Session(
            id=session_id,
            model=fields[b"model"].decode(),
            version=fields[b"version"].decode(),
            owner=fields[b"owner"].decode() or None,
            step=int(fields[b"step"]),
            created_at=created_at,
            last_used=float(fields[b"lu"]),
            idle_ttl_s=idle_ttl_s,
            ttl_s=ttl_s,
            replay=unpack_replay(replay) if replay else None,
        )

    async def get(self, session_id: str) -> Session:
        with self._reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self._key(session_id))
                pipe.get(f"{self._p}:t:{session_id}")
                fields, tomb = await pipe.execute()
        if not fields:
            if tomb:
                reason = tomb.decode()
                raise Gone(
                    f"session {session_id} was {reason}", session_id=session_id, reason=reason
                )
            raise NotFound(f"no session {session_id}", session_id=session_id)
        session = self._decode(session_id, fields)
        if session.expires_at <= time.time():
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        return session

    async def sessions_of(self, owner: str | None) -> list[Session]:
        now = time.time()
        with self._reachable():
            if owner is None:
                raw_ids = await self._redis.zrangebyscore(f"{self._p}:live", _ms(now), "+inf")
            else:
                raw_ids = sorted(await self._redis.smembers(f"{self._p}:own:{owner}"))
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids]
            found: list[Session] = []
            for at in range(0, len(ids), _LIST_BATCH):
                chunk = ids[at : at + _LIST_BATCH]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for session_id in chunk:
                        pipe.hgetall(self._key(session_id))
                    replies = await pipe.execute()
                found += [self._decode(i, f) for i, f in zip(chunk, replies, strict=True) if f]
        return [s for s in found if (owner is None or s.owner == owner) and s.expires_at > now]

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        """Rows in one round trip. A row gone meanwhile loads as zeros (save() then refuses
        it); a lone session that is gone raises its 404/410 instead."""
        with self._reachable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for session in sessions:
                    pipe.hget(self._key(session.id), "state")
                blobs: list[bytes | None] = await pipe.execute()
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
        args: list[Any] = [self._p, _ms(now), self._tomb_ms]
        for session, row, before in zip(sessions, rows, expected, strict=True):
            replay = pack_replay(session.replay) if session.replay is not None else b""
            args += [session.id, before, session.step, repr(session.last_used), row, replay]
            args += self._expiry(session, now)
        with self._reachable():
            codes = await self._save(args=args)
        return [_save_error(s, code) for s, code in zip(sessions, codes, strict=True)]

    async def touch(self, session: Session) -> None:
        now = time.time()
        args: list[Any] = [self._p, _ms(now), self._tomb_ms, session.id, repr(session.last_used)]
        with self._reachable():
            await self._touch(args=[*args, *self._expiry(session, now)])

    async def delete(self, session_id: str) -> None:
        with self._reachable():
            found, *totals = await self._delete(args=[self._p, session_id])
        self._totals = (int(totals[0]), int(totals[1]))
        if not found:
            raise NotFound(f"no session {session_id}", session_id=session_id)

    async def sweep(self) -> int:
        total = 0
        while True:
            with self._reachable():
                args: list[Any] = [self._p, _ms(time.time()), _SWEEP_BATCH]
                reply = await self._sweep(args=args)
            expired = int(reply[0])
            self._count(expired, 0, reply[1:])
            total += expired
            if expired < _SWEEP_BATCH:
                return total

    def stats(self) -> tuple[int, int]:
        """Shared totals as of this replica's last create, delete or sweep."""
        return self._totals


def _save_error(session: Session, code: int | bytes) -> SeqServeError | None:
    sid = session.id
    if isinstance(code, bytes):
        reason = code.decode()
        return Gone(f"session {sid} was {reason}", session_id=sid, reason=reason)
    if code == -1:
        return None
    if code == -2:
        return Gone(f"session {sid} was expired", session_id=sid, reason="expired")
    if code == -3:
        return NotFound(f"no session {sid}", session_id=sid)
    return StepConflict(
        f"another request committed first: the session is at step {code}", current_step=code
    )
