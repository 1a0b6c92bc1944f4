"""Many requests on one stream: each key's requests run in the order sent, keys concurrently.

`ordered` reads requests and yields answers as they complete. A key (a sequence) with nothing
running gets one task that runs its request, then any of the key's requests that arrived
meanwhile, in order (a per-key deque): no task per request is chained after another. At most
`limit` requests are in flight: beyond it reading stops, and HTTP/2 flow control pushes back on
the client. When the consumer goes away (a client that disconnects), the requests already
started still run to the end: nothing already sent is cut short halfway, and the tasks are
kept referenced until they finish.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """Answers of `run` over `requests`, in order per `key` (None: unordered); `run` must not
    raise (a stream answers its errors as messages)."""
    answers: asyncio.Queue[A | None] = asyncio.Queue()
    waiting: dict[Hashable, deque[R]] = {}  # a key with a running task: what comes after
    in_flight = 0
    room = asyncio.Event()  # set when in_flight drops below limit
    idle = asyncio.Event()  # set when nothing is in flight
    idle.set()

    def done() -> None:
        nonlocal in_flight
        in_flight -= 1
        room.set()
        if not in_flight:
            idle.set()

    async def drain(k: Hashable | None, request: R) -> None:
        later = waiting.get(k) if k is not None else None
        try:
            while True:
                try:
                    answers.put_nowait(await run(request))
                finally:
                    done()
                if not later:
                    return
                request = later.popleft()
        finally:  # normally empty; after a broken `run` (or a cancel) its followers are dropped
            if k is not None:
                for _ in waiting.pop(k, ()):
                    done()

    async def pump() -> None:
        nonlocal in_flight
        try:
            async for request in requests:
                while in_flight >= limit:
                    room.clear()
                    await room.wait()
                in_flight += 1
                idle.clear()
                k = key(request)
                if k is not None and k in waiting:
                    waiting[k].append(request)  # its running task takes it in turn
                    continue
                if k is not None:
                    waiting[k] = deque()
                _keep(asyncio.create_task(drain(k, request)))
            await idle.wait()  # never cancels what runs
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
