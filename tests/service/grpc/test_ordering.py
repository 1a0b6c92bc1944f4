"""The stream scheduler alone: per-key order, other keys concurrent, bounded reading."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from seqserve.service.api.grpc.ordering import ordered

Request = tuple[str | None, int]


async def _source(items: list[Request], read: list[Request]) -> AsyncIterator[Request]:
    for item in items:
        read.append(item)
        yield item


def _key(request: Request) -> str | None:
    return request[0]


def test_one_key_runs_in_order_while_other_keys_run_meanwhile() -> None:
    log: list[str] = []

    async def main() -> list[Request]:
        b_ran = asyncio.Event()

        async def run(request: Request) -> Request:
            log.append(f"start {request}")
            if request == ("a", 1):
                await b_ran.wait()  # a deadlock unless key b runs while a's first waits
            if request[0] == "b":
                b_ran.set()
            await asyncio.sleep(0)
            log.append(f"end {request}")
            return request

        items: list[Request] = [("a", 1), ("a", 2), ("b", 1), (None, 1), ("a", 3)]
        stream = ordered(_source(items, []), _key, run, limit=8)
        return [answer async for answer in stream]

    answers = asyncio.run(asyncio.wait_for(main(), 10))
    assert sorted(answers, key=str) == sorted(
        [("a", 1), ("a", 2), ("b", 1), (None, 1), ("a", 3)], key=str
    )
    assert [a for a in answers if a[0] == "a"] == [("a", 1), ("a", 2), ("a", 3)]
    for earlier, later in ((1, 2), (2, 3)):  # a's next starts only after the previous ended
        assert log.index(f"end ('a', {earlier})") < log.index(f"start ('a', {later})")
    assert log.index("end ('b', 1)") < log.index("end ('a', 1)")


def test_reading_pauses_at_the_limit_and_a_gone_consumer_cuts_nothing_short() -> None:
    read: list[Request] = []
    finished: list[Request] = []

    async def main() -> None:
        gate = asyncio.Event()

        async def run(request: Request) -> Request:
            await gate.wait()
            finished.append(request)
            return request

        items: list[Request] = [(str(k), k) for k in range(10)]
        stream = ordered(_source(items, read), _key, run, limit=2)
        consumer = asyncio.ensure_future(anext(stream))
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(read) == 3  # two running, the third waits for a slot
        consumer.cancel()  # the client goes away
        await asyncio.gather(consumer, return_exceptions=True)
        await stream.aclose()
        gate.set()
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert sorted(finished) == [("0", 0), ("1", 1)]  # both ran to their end
    assert len(read) == 3  # nothing more was read
