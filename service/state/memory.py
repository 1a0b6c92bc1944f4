"""The in-process state store: metadata in a dict, state rows in per-version slabs."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from service.errors import Gone, NotFound, Overloaded, SeqServeError
from service.state.slab import Slab
from service.state.store import Layout, Session, StateRows, StateStore

MAX_TOMBSTONES = 100_000


class MemoryStateStore(StateStore):
    def __init__(
        self,
        max_sessions: int,
        max_state_bytes: int,
        retry_after_s: int,
        tombstone_ttl_s: float,
        evict_idle_s: float = 0.0,
        on_expired: Callable[[int], None] = lambda n: None,
        on_evicted: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._slabs: dict[tuple[str, str], Slab] = {}
        self._tombstones: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_bytes = max_state_bytes
        self._retry_after = retry_after_s
        self._tombstone_ttl = tombstone_ttl_s
        self._evict_idle_s = evict_idle_s
        self._on_expired = on_expired
        self._on_evicted = on_evicted
        self._bytes = 0

    def _slab(self, session: Session, layout: Layout) -> Slab:
        key = (session.model, session.version)
        slab = self._slabs.get(key)
        if slab is None:
            slab = self._slabs[key] = Slab(layout)
        return slab

    def _evict_one(self) -> bool:
        """Drop the least recently used session idle for over `evict_idle_s`, if any."""
        if self._evict_idle_s <= 0 or not self._sessions:
            return False
        oldest = min(self._sessions.values(), key=lambda s: s.last_used)
        if time.time() - oldest.last_used < self._evict_idle_s:
            return False
        self._bury([oldest], "evicted")
        self._on_evicted(1)
        return True

    def _over_cap(self, layout: Layout) -> str | None:
        if len(self._sessions) >= self._max_sessions:
            return f"session cap reached ({self._max_sessions} live sessions)"
        if self._bytes + layout.nbytes > self._max_bytes:
            return f"state memory cap reached ({self._max_bytes} bytes)"
        return None

    async def create(self, session: Session, layout: Layout, state: StateRows | None) -> None:
        while (full := self._over_cap(layout)) and self._evict_one():
            pass
        if full:
            raise Overloaded(
                full,
                self._retry_after,
                max_sessions=self._max_sessions,
                max_state_bytes=self._max_bytes,
            )
        slab = self._slab(session, layout)
        session.row = slab.alloc()
        if state is not None:
            slab.scatter([session.row], state)
        self._sessions[session.id] = session
        self._bytes += layout.nbytes

    async def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            until, reason = self._tombstones.get(session_id, (0.0, ""))
            if until > time.time():
                raise Gone(
                    f"session {session_id} was {reason}", session_id=session_id, reason=reason
                )
            raise NotFound(f"no session {session_id}", session_id=session_id)
        if session.expires_at <= time.time():
            self._expire([session])
            raise Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
        return session

    async def sessions_of(self, owner: str | None) -> list[Session]:
        now = time.time()
        return [
            s
            for s in self._sessions.values()
            if (owner is None or s.owner == owner) and s.expires_at > now
        ]

    async def load(self, sessions: list[Session], layout: Layout) -> StateRows:
        return self._slab(sessions[0], layout).gather([s.row for s in sessions])

    async def save(
        self, sessions: list[Session], layout: Layout, state: StateRows, expected: list[int]
    ) -> list[SeqServeError | None]:
        # a session deleted, expired or evicted while its step ran must not be written:
        # its row may already belong to another session
        live = [self._sessions.get(s.id) is s for s in sessions]
        if all(live):
            self._slab(sessions[0], layout).scatter([s.row for s in sessions], state)
            return [None] * len(sessions)
        idx = [i for i, ok in enumerate(live) if ok]
        if idx:
            rows = StateRows([t[idx] for t in state.tensors], state.prev_x[idx], state.last_y[idx])
            self._slab(sessions[0], layout).scatter([sessions[i].row for i in idx], rows)
        return [
            None if ok else Gone(f"session {s.id} ended while its step ran", session_id=s.id)
            for s, ok in zip(sessions, live, strict=True)
        ]

    async def touch(self, session: Session) -> None:
        return None  # metadata objects are shared: nothing to write back

    async def delete(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise NotFound(f"no session {session_id}", session_id=session_id)
        self._release(session)

    def _release(self, session: Session) -> None:
        slab = self._slabs[(session.model, session.version)]
        slab.free(session.row)
        self._bytes -= slab.layout.nbytes

    def _bury(self, sessions: list[Session], reason: str) -> None:
        until = time.time() + self._tombstone_ttl
        for session in sessions:
            del self._sessions[session.id]
            self._release(session)
            self._tombstones[session.id] = (until, reason)
        while len(self._tombstones) > MAX_TOMBSTONES:
            self._tombstones.popitem(last=False)

    def _expire(self, sessions: list[Session]) -> None:
        self._bury(sessions, "expired")
        self._on_expired(len(sessions))

    async def sweep(self) -> int:
        now = time.time()
        expired = [s for s in self._sessions.values() if s.expires_at <= now]
        if expired:
            self._expire(expired)
        while self._tombstones and next(iter(self._tombstones.values()))[0] <= now:
            self._tombstones.popitem(last=False)
        return len(expired)

    def stats(self) -> tuple[int, int]:
        return len(self._sessions), self._bytes
