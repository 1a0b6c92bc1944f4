"""One operation per session at a time, in arrival order, with a bounded wait line."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from seqserve.service.errors import Overloaded


class SessionLocks:
    """Locks exist only while a session has work in flight: an idle session costs nothing, and
    an uncontended one takes its lock without an `asyncio.Lock` or a future (every step does)."""

    def __init__(self, max_waiters: int, retry_after_s: int) -> None:
        # a held session -> the futures of those waiting for it, in arrival order
        self._locks: dict[str, deque[asyncio.Future[None]]] = {}
        self._max_waiters = max_waiters
        self._retry_after_s = retry_after_s

    async def acquire(self, session_id: str) -> None:
        line = self._locks.get(session_id)
        if line is None:  # free: held from now on
            self._locks[session_id] = deque()
            return
        if len(line) + 1 >= self._max_waiters:  # the holder counts as one
            raise Overloaded(
                f"too many concurrent requests for session {session_id}", self._retry_after_s
            )
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(session_id)  # handed the lock as it gave up: pass it on
            else:
                with contextlib.suppress(ValueError):  # (a release may have dropped it)
                    line.remove(waiter)
            raise

    def release(self, session_id: str) -> None:
        line = self._locks[session_id]
        while line:
            waiter = line.popleft()
            if not waiter.done():  # (one that gave up is skipped)
                waiter.set_result(None)  # the lock passes straight to the next in line
                return
        del self._locks[session_id]

    @asynccontextmanager
    async def exclusive(self, session_id: str) -> AsyncIterator[None]:
        await self.acquire(session_id)
        try:
            yield
        finally:
            self.release(session_id)
