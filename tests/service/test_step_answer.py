"""What a request awaits for its batched step (`engine._committed`): the step's answer, the
session released once the step is done, and a request that gives up leaving its step running."""

from __future__ import annotations

import asyncio

import pytest
from seqserve.service.engine import _committed


def test_the_answer_follows_the_step_and_the_release_comes_first() -> None:
    async def go() -> list[str]:
        events: list[str] = []
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        answer = _committed(job, lambda: events.append("released"))
        job.set_result("outputs")
        events.append(await answer)
        return events

    assert asyncio.run(go()) == ["released", "outputs"]


def test_a_failed_step_fails_its_request() -> None:
    async def go() -> None:
        released = []
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        answer = _committed(job, lambda: released.append(True))
        job.set_exception(ValueError("inference failed"))
        with pytest.raises(ValueError, match="inference failed"):
            await answer
        assert released == [True]

    asyncio.run(go())


def test_a_request_that_gives_up_leaves_its_step_running_and_locked() -> None:
    async def go() -> None:
        released = []
        job: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        request = asyncio.create_task(_awaiting(_committed(job, lambda: released.append(True))))
        await asyncio.sleep(0)
        request.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await request
        assert not job.cancelled()
        assert released == []  # still locked: the step is not committed yet
        job.set_exception(ValueError("nobody reads this"))  # retrieved, not logged
        await asyncio.sleep(0)
        assert released == [True]

    asyncio.run(go())


async def _awaiting(answer: asyncio.Future[str]) -> str:
    return await answer
