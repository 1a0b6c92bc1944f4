"""SessionLocks on its own: a bounded wait line per session, served in arrival order, where a
waiter that gives up (a client that went away) frees its place and blocks nobody."""

from __future__ import annotations

import asyncio

import pytest
from seqserve.service.errors import Overloaded
from seqserve.service.session_locks import SessionLocks


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_the_line_is_bounded_and_served_in_arrival_order() -> None:
    async def go() -> list[int]:
        locks, served = SessionLocks(max_waiters=4, retry_after_s=9), []

        async def worker(k: int) -> None:
            async with locks.exclusive("s"):
                served.append(k)
                await asyncio.sleep(0)

        await locks.acquire("s")  # one running...
        line = [asyncio.create_task(worker(k)) for k in range(3)]  # ...three waiting
        await _settle()
        with pytest.raises(Overloaded) as refused:
            await locks.acquire("s")
        assert refused.value.headers["Retry-After"] == "9"
        async with locks.exclusive("other"):  # other sessions have lines of their own
            pass
        locks.release("s")
        await asyncio.gather(*line)
        async with locks.exclusive("s"):  # all done: the session takes work again at once
            served.append(99)
        return served

    assert asyncio.run(go()) == [0, 1, 2, 99]


def test_a_waiter_that_gives_up_frees_its_place() -> None:
    async def go() -> None:
        locks = SessionLocks(max_waiters=2, retry_after_s=1)
        await locks.acquire("s")
        quitter = asyncio.create_task(locks.acquire("s"))
        await _settle()
        with pytest.raises(Overloaded):
            await locks.acquire("s")
        quitter.cancel()
        await _settle()
        stayer = asyncio.create_task(locks.acquire("s"))  # the freed place is taken
        await _settle()
        assert not stayer.done()
        locks.release("s")
        await asyncio.wait_for(stayer, 5)  # the lock passed over the quitter to the stayer
        locks.release("s")
        await asyncio.wait_for(locks.acquire("s"), 5)  # and nothing is left held
        locks.release("s")

    asyncio.run(go())


def test_an_idle_session_costs_nothing() -> None:
    """The promise is about memory, so it is checked inside: no entry outlives the work."""

    async def go() -> SessionLocks:
        locks = SessionLocks(max_waiters=4, retry_after_s=1)
        for sid in ("a", "b"):
            async with locks.exclusive(sid):
                waiter = asyncio.create_task(locks.acquire(sid))
                quitter = asyncio.create_task(locks.acquire(sid))
                await _settle()
                quitter.cancel()  # gives up while waiting in line
                await _settle()
            await waiter
            locks.release(sid)
        return locks

    assert asyncio.run(go())._locks == {}
