"""SessionLocks: a waiter that gives up just as the lock is handed to it passes the lock on,
so the session is not left locked forever (a session_locks.py survivor of the mutation run)."""

from __future__ import annotations

import asyncio

import pytest
from seqserve.service.session_locks import SessionLocks


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_waiter_cancelled_as_it_is_handed_the_lock_passes_it_on() -> None:
    async def go() -> None:
        locks = SessionLocks(max_waiters=4, retry_after_s=1)
        await locks.acquire("s")
        handed = asyncio.create_task(locks.acquire("s"))
        await _settle()
        locks.release("s")  # the lock is now the waiter's...
        handed.cancel()  # ...but its request goes away before it resumes
        with pytest.raises(asyncio.CancelledError):
            await handed
        after = asyncio.create_task(locks.acquire("s"))
        await _settle()
        assert after.done()  # the session is free again, not held by nobody
        locks.release("s")

    asyncio.run(go())
