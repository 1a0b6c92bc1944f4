"""BodyDeadlines on its own: body reads timed out by a periodic sweep, not a timer each. A read
that stalls past the deadline fails with BodyTimeout; reads that come in time, reads after the
body is complete and cancellations from elsewhere are left as they are."""

from __future__ import annotations

import asyncio

import pytest
from seqserve.service.api.body_deadlines import BodyDeadlines, BodyTimeout
from starlette.types import Message, Receive

TIMEOUT_S = 0.2
BODY: Message = {"type": "http.request", "body": b"{}", "more_body": False}


def _stalled() -> tuple[asyncio.Event, Receive]:
    """A receive that waits until the event is set (a client that stopped sending)."""
    arrived = asyncio.Event()

    async def receive() -> Message:
        await arrived.wait()
        return BODY

    return arrived, receive


def test_a_stalled_read_fails_with_body_timeout_and_the_sweep_stops() -> None:
    async def go() -> BodyDeadlines:
        deadlines = BodyDeadlines(TIMEOUT_S)
        _, receive = _stalled()
        with pytest.raises(BodyTimeout) as timed_out:
            await deadlines.receive(receive)()
        assert timed_out.value.status_code == 408
        assert "0.2 s" in str(timed_out.value.detail)
        assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]
        for _ in range(10):  # nothing waits: the sweep does not re-arm
            await asyncio.sleep(TIMEOUT_S / 4)
        return deadlines

    deadlines = asyncio.run(go())
    assert deadlines._waiting == {}
    assert deadlines._sweep is None


def test_reads_in_time_pass_through_while_the_sweep_runs() -> None:
    async def go() -> list[Message]:
        deadlines = BodyDeadlines(TIMEOUT_S)
        got = []
        for _ in range(8):  # each read waits about half the timeout: never one whole timeout
            arrived, receive = _stalled()
            asyncio.get_running_loop().call_later(TIMEOUT_S / 2, arrived.set)
            got.append(await deadlines.receive(receive)())
        return got

    assert asyncio.run(go()) == [BODY] * 8


def test_after_a_complete_body_reads_wait_untimed() -> None:
    async def go() -> Message:
        deadlines = BodyDeadlines(TIMEOUT_S)
        calls = 0
        disconnected = asyncio.Event()

        async def receive() -> Message:
            nonlocal calls
            calls += 1
            if calls == 1:
                return BODY
            await disconnected.wait()  # a stream listening for the client to leave
            return {"type": "http.disconnect"}

        timed = deadlines.receive(receive)
        assert await timed() == BODY
        asyncio.get_running_loop().call_later(TIMEOUT_S * 3, disconnected.set)
        return await timed()

    assert asyncio.run(go()) == {"type": "http.disconnect"}


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def go() -> None:
        deadlines = BodyDeadlines(TIMEOUT_S)
        _, receive = _stalled()
        reader = asyncio.create_task(deadlines.receive(receive)())
        await asyncio.sleep(0)
        reader.cancel()  # e.g. the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert deadlines._waiting == {}

    asyncio.run(go())
