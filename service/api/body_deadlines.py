"""Request-body read deadlines, checked by one periodic sweep instead of a timer per read.

A timer armed and cancelled around every body read (`asyncio.timeout`) cost more than the rest
of the request middleware together, on every step. Reads waiting on the client are kept in a
dict instead; a sweep every `timeout_s / 4` (at most 1 s) cancels those past their deadline, so
a stalled body still fails after `timeout_s` (and at most a sweep period later).
"""

from __future__ import annotations

import asyncio

from seqserve.service.errors import RequestTimeout
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

MAX_SWEEP_PERIOD_S = 1.0


class BodyTimeout(HTTPException):
    """Raised from `receive` when a request body stalls (Content-Length larger than what
    comes, or a client that stopped sending); the connection closes after the 408."""

    def __init__(self, timeout_s: float) -> None:
        detail = f"the request body sent nothing for {timeout_s:g} s"
        super().__init__(408, detail, headers={"Connection": "close"})

    def error(self) -> RequestTimeout:
        error = RequestTimeout(str(self.detail))
        error.headers["Connection"] = "close"
        return error


class BodyDeadlines:
    """The body reads in progress on one event loop and the sweep that times them out."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._period = min(MAX_SWEEP_PERIOD_S, timeout_s / 4)
        self._waiting: dict[asyncio.Task[object], float] = {}  # the reading task: its deadline
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the sweep runs on

    def receive(self, receive: Receive) -> Receive:
        """`receive` raising BodyTimeout when a body chunk takes over `timeout_s` to come;
        once the body is complete it waits untimed (for the disconnect a stream listens for)."""
        complete = False

        async def timed() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            message = await self._read(receive)
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed

    async def _read(self, receive: Receive) -> Message:
        task = asyncio.current_task()
        if task is None:  # not in a task (never so under an ASGI server): a timer of its own
            async with asyncio.timeout(self.timeout_s):
                return await receive()
        loop = asyncio.get_running_loop()
        self._waiting[task] = loop.time() + self.timeout_s
        if self._sweep is None or self._loop is not loop:  # (an app may outlive a loop: tests)
            self._loop = loop
            self._sweep = loop.call_later(self._period, self._run_sweep, loop)
        cancelling = task.cancelling()
        try:
            return await receive()
        except asyncio.CancelledError:
            # ours only when the sweep cancelled it and nobody else did (as asyncio.timeout)
            if task in self._expired and task.uncancel() <= cancelling:
                raise BodyTimeout(self.timeout_s) from None
            raise
        finally:
            del self._waiting[task]
            self._expired.discard(task)

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # a loop that was left: the current one has its own sweep
        now = loop.time()
        for task, deadline in self._waiting.items():
            if deadline <= now and task not in self._expired and task.get_loop() is loop:
                self._expired.add(task)
                task.cancel()
        self._sweep = (
            loop.call_later(self._period, self._run_sweep, loop) if self._waiting else None
        )
