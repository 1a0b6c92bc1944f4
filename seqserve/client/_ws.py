"""Streaming steps over a session's WebSocket: a window of messages in flight, answers in
order, exactly once across dropped connections.

Up to `window` messages are on the wire at once (never more than the server's replay depth,
read from the handshake); chunks that arrive while the window is full travel together in the
next message (up to `max_steps` timesteps), and each chunk's outputs are split back out and
yielded in order. A dropped connection is reopened (another replica if given) and every
message not yet answered is resent with its own step index: the server answers those it had
applied from its stored answers and applies the rest, so nothing is lost and nothing is
applied twice (see `_window`).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from seqserve.client import _wire
from seqserve.client._retry import Retry, should_retry
from seqserve.client._window import END, Batch, Window, gather
from seqserve.client.errors import TransportError, error_from

if TYPE_CHECKING:
    from seqserve.client._async import AsyncSession
    from seqserve.client._sync import Session

Array = _wire.Array
_FEED_DEPTH = 64  # chunks read ahead of the server: backpressure on the producer
_POLL_S = 0.002  # with room in the window, how often an answer wait looks for a new chunk
# a dropped or dead connection; ValueError: an answer that is not the oldest message's
_DROPS = (WebSocketException, OSError, TimeoutError, EOFError, ValueError)


def _answer(reply: str | bytes, retry: Retry) -> tuple[dict[str, Any] | None, float | None]:
    """(the reply, None) for outputs; (None, wait) for a refusal worth retrying; raises else."""
    msg = _wire.decode(reply.encode() if isinstance(reply, str) else reply)
    if not isinstance(msg, dict) or "error" not in msg:
        return msg, None
    problem = msg["error"] if isinstance(msg["error"], dict) else {}
    error = error_from(int(problem.get("status", 500)), msg)
    if not should_retry(int(problem.get("status", 500))):
        raise error
    after = problem.get("retry_after_s")
    wait = retry.delay(float(after) if isinstance(after, int | float) else None)
    if wait is None:
        raise error
    return None, wait


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


# -- blocking -------------------------------------------------------------------------------


class _FeedBase:
    """What both feeds share: the chunk held over from the last message, and the end."""

    _q: queue.Queue[Any] | asyncio.Queue[Any]
    _empty: type[Exception]

    def __init__(self) -> None:
        self._held: Any = None
        self.ended = False

    def _waiting(self) -> Iterator[Any]:
        while True:
            try:
                yield self._q.get_nowait()
            except self._empty:
                return

    def _batch_from(self, first: Any, max_steps: int) -> Batch | None:
        """`first` and the chunks waiting behind it as one message (None at the end)."""
        if isinstance(first, BaseException):
            raise first
        if first is END:
            self.ended = True
            return None
        batch, self._held = gather(first, self._waiting(), max_steps)
        return batch


class _Feed(_FeedBase):
    """Reads the caller's chunks on a thread, so the stream can see which are waiting."""

    _empty = queue.Empty

    def __init__(self, chunks: Iterable[Any]) -> None:
        super().__init__()
        self._q: queue.Queue[Any] = queue.Queue(_FEED_DEPTH)
        threading.Thread(target=self._read, args=(chunks,), daemon=True).start()

    def _read(self, chunks: Iterable[Any]) -> None:
        try:
            for chunk in chunks:
                self._q.put(_wire.steps(chunk))
        except BaseException as e:  # handed to the consumer, raised there
            self._q.put(e)
        self._q.put(END)

    def take(self, max_steps: int, block: bool) -> Batch | None:
        """The next message's chunks; None at the end, or when none waits and not `block`."""
        first, self._held = self._held, None
        if first is None:
            try:
                first = self._q.get(block=block)
            except queue.Empty:
                return None
        return self._batch_from(first, max_steps)


def stream_sync(
    session: Session, chunks: Iterable[Any], max_steps: int, window: int
) -> Iterator[Array]:
    client = session.client
    feed = _Feed(chunks)
    win = Window(session.current_step, window)
    ws: ClientConnection | None = None
    retry = client.retry()
    heard = time.monotonic()  # the last sign of life of the connection
    try:
        while True:
            while win.room() and not feed.ended:
                if (batch := feed.take(max_steps, block=not win.pending)) is None:
                    break
                win.add(batch)
            if not win.pending:
                return
            try:
                if ws is None:
                    url = _wire.ws_url(client.base_url, session.id)
                    ws = connect(  # entered, not `with`: a drop replaces it
                        url,
                        additional_headers=_headers(client.api_key),
                        open_timeout=client.timeout,
                    ).__enter__()
                    win.connected(ws.response.headers if ws.response else None)
                    heard = time.monotonic()
                    continue  # the window may have grown: fill it before sending
                for text in win.unsent():
                    ws.send(text)
                polling = win.room() and not feed.ended
                try:
                    reply = ws.recv(timeout=_POLL_S if polling else client.timeout)
                except TimeoutError:
                    if polling and time.monotonic() - heard < client.timeout:
                        continue  # look for a new chunk, then wait again
                    raise
                msg, wait = _answer(reply, retry)
                if msg is not None:
                    step, outputs = win.answered(msg)
            except _DROPS as e:
                if ws is not None:
                    ws.close()
                ws = None
                client.next_replica()
                if (wait := retry.delay()) is None:
                    raise TransportError(f"stream of {session.id}: {e!r}") from e
                time.sleep(wait)
                continue
            if msg is None:  # refused (e.g. 503): resend from it on a fresh connection
                ws.close()
                ws = None
                time.sleep(wait or 0)
                continue
            heard, retry = time.monotonic(), client.retry()
            session.current_step = step
            yield from outputs
    finally:
        if ws is not None:
            ws.close()


# -- asyncio --------------------------------------------------------------------------------


async def _read_async(chunks: Iterable[Any] | AsyncIterable[Any], q: asyncio.Queue[Any]) -> None:
    try:
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                await q.put(_wire.steps(chunk))
        else:
            for chunk in chunks:
                await q.put(_wire.steps(chunk))
    except Exception as e:  # handed to the consumer, raised there
        await q.put(e)
    await q.put(END)


class _AsyncFeed(_FeedBase):
    """The caller's chunks, read by a task, so the stream can see which are waiting."""

    _empty = asyncio.QueueEmpty

    def __init__(self, chunks: Iterable[Any] | AsyncIterable[Any]) -> None:
        super().__init__()
        self._q: asyncio.Queue[Any] = asyncio.Queue(_FEED_DEPTH)
        self.reader = asyncio.create_task(_read_async(chunks, self._q))

    async def take(self, max_steps: int, block: bool) -> Batch | None:
        """The next message's chunks; None at the end, or when none waits and not `block`."""
        first, self._held = self._held, None
        if first is None:
            if block:
                first = await self._q.get()
            else:
                try:
                    first = self._q.get_nowait()
                except asyncio.QueueEmpty:
                    return None
        return self._batch_from(first, max_steps)


async def stream_async(
    session: AsyncSession,
    chunks: Iterable[Any] | AsyncIterable[Any],
    max_steps: int,
    window: int,
) -> AsyncIterator[Array]:
    client = session.client
    feed = _AsyncFeed(chunks)
    win = Window(session.current_step, window)
    ws: AsyncConnection | None = None
    retry = client.retry()
    loop = asyncio.get_running_loop()
    heard = loop.time()
    try:
        while True:
            while win.room() and not feed.ended:
                if (batch := await feed.take(max_steps, block=not win.pending)) is None:
                    break
                win.add(batch)
            if not win.pending:
                return
            try:
                if ws is None:
                    url = _wire.ws_url(client.base_url, session.id)
                    ws = await aconnect(
                        url,
                        additional_headers=_headers(client.api_key),
                        open_timeout=client.timeout,
                    )
                    win.connected(ws.response.headers if ws.response else None)
                    heard = loop.time()
                    continue  # the window may have grown: fill it before sending
                for text in win.unsent():
                    await ws.send(text)
                polling = win.room() and not feed.ended
                try:
                    # cancelling recv() loses no message: the next recv() returns it
                    async with asyncio.timeout(_POLL_S if polling else client.timeout):
                        reply = await ws.recv()
                except TimeoutError:
                    if polling and loop.time() - heard < client.timeout:
                        continue  # look for a new chunk, then wait again
                    raise
                msg, wait = _answer(reply, retry)
                if msg is not None:
                    step, outputs = win.answered(msg)
            except _DROPS as e:
                if ws is not None:
                    await ws.close()
                ws = None
                client.next_replica()
                if (wait := retry.delay()) is None:
                    raise TransportError(f"stream of {session.id}: {e!r}") from e
                await asyncio.sleep(wait)
                continue
            if msg is None:  # refused (e.g. 503): resend from it on a fresh connection
                await ws.close()
                ws = None
                await asyncio.sleep(wait or 0)
                continue
            heard, retry = loop.time(), client.retry()
            session.current_step = step
            for out in outputs:
                yield out
    finally:
        feed.reader.cancel()
        if ws is not None:
            await ws.close()
