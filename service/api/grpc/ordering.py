"""Many requests on one stream: each key's requests run in the order sent, keys concurrently.

`ordered` reads requests, starts each as a task chained after the previous task of its key (a
sequence), and yields answers as they complete. At most `limit` requests are in flight: beyond
it reading stops, and HTTP/2 flow control pushes back on the client. When the consumer goes
away (a client that disconnects), the requests already started still run to the end: nothing
already sent is cut short halfway, and the tasks are kept referenced until they finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TypeVar

R = TypeVar("R")
A = TypeVar("A")

_running: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


def _keep(task: asyncio.Task[None]) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


async def ordered(
    requests: AsyncIterator[R],
    key: Callable[[R], Hashable | None],
    run: Callable[[R], Awaitable[A]],
    limit: int,
) -> AsyncIterator[A]:
    """Answers of `run` over `requests`, chained per `key` (None: unordered); `run` must not
    raise (a stream answers its errors as messages)."""
    answers: asyncio.Queue[A | None] = asyncio.Queue()
    slots = asyncio.Semaphore(limit)
    tails: dict[Hashable, asyncio.Task[None]] = {}

    async def one(request: R, after: asyncio.Task[None] | None) -> None:
        try:
            if after is not None:
                await asyncio.wait([after])  # its outcome is its own answer's business
            answers.put_nowait(await run(request))
        finally:
            slots.release()

    def forgetter(k: Hashable) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            if tails.get(k) is task:  # else a later request of the key is the tail now
                del tails[k]

        return forget

    async def pump() -> None:
        started: set[asyncio.Task[None]] = set()
        try:
            async for request in requests:
                await slots.acquire()
                k = key(request)
                task = asyncio.create_task(one(request, None if k is None else tails.get(k)))
                _keep(task)
                started.add(task)
                task.add_done_callback(started.discard)
                if k is not None:
                    tails[k] = task
                    task.add_done_callback(forgetter(k))
            if started:
                await asyncio.wait(started)  # wait, not gather: never cancels them
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(pump())
    _keep(reader)
    try:
        while (answer := await answers.get()) is not None:
            yield answer
        await reader  # a failed read surfaces here
    finally:
        reader.cancel()  # stops reading; requests already started run to their end
