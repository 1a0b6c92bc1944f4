"""One operation per session at a time, in arrival order, with a bounded wait line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from seqserve.service.errors import Overloaded


class SessionLocks:
    """Locks exist only while a session has work in flight: an idle session costs nothing."""

    def __init__(self, max_waiters: int, retry_after_s: int) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._max_waiters = max_waiters
        self._retry_after_s = retry_after_s

    async def acquire(self, session_id: str) -> None:
        lock, waiters = self._locks.get(session_id) or (asyncio.Lock(), [0])
        if waiters[0] >= self._max_waiters:
            raise Overloaded(
                f"too many concurrent requests for session {session_id}", self._retry_after_s
            )
        self._locks[session_id] = (lock, waiters)
        waiters[0] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._forget(session_id, waiters)
            raise

    def release(self, session_id: str) -> None:
        lock, waiters = self._locks[session_id]
        lock.release()
        self._forget(session_id, waiters)

    def _forget(self, session_id: str, waiters: list[int]) -> None:
        waiters[0] -= 1
        if waiters[0] == 0:
            del self._locks[session_id]

    @asynccontextmanager
    async def exclusive(self, session_id: str) -> AsyncIterator[None]:
        await self.acquire(session_id)
        try:
            yield
        finally:
            self.release(session_id)
