"""Streaming steps over a session's WebSocket, exactly once across dropped connections.

The server keeps one stored answer per session (its last applied request), so the stream
keeps one message in flight and batches instead: chunks that arrive while a message is out
travel together in the next one (up to `max_steps` timesteps), and each chunk's outputs are
split back out and yielded in order. A dropped connection is reopened (another replica if
given) and the same message resent with the same step index: if the server had applied it,
it answers with the stored outputs; nothing is lost, nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from seqserve.client import _wire
from seqserve.client._retry import Retry, should_retry
from seqserve.client.errors import TransportError, error_from

if TYPE_CHECKING:
    from seqserve.client._async import AsyncSession
    from seqserve.client._sync import Session

Array = _wire.Array
_END = object()
_FEED_DEPTH = 64  # chunks read ahead of the server: backpressure on the producer
_DROPS = (WebSocketException, OSError, TimeoutError, EOFError)


@dataclass
class Batch:
    chunks: list[Array]

    def message(self, step: int, number: int) -> bytes:
        inputs = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        return _wire.encode({"inputs": inputs, "step": step, "id": number})

    def split(self, outputs: Any) -> list[Array]:
        cuts = np.cumsum([len(c) for c in self.chunks])[:-1]
        return list(np.split(_wire.outputs(outputs), cuts))

    @property
    def steps(self) -> int:
        return sum(len(c) for c in self.chunks)


def _gather(first: Array, more: Iterator[Array | object], max_steps: int) -> tuple[Batch, Any]:
    """`first` plus the chunks already waiting, up to max_steps; also the one held back."""
    batch = Batch([first])
    for item in more:
        if item is _END or not isinstance(item, np.ndarray) or batch.steps + len(item) > max_steps:
            return batch, item
        batch.chunks.append(item)
    return batch, None


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


class _Feed:
    """Reads the caller's chunks on a thread, so the stream can see which are waiting."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self._q: queue.Queue[Any] = queue.Queue(_FEED_DEPTH)
        self._held: Any = None
        threading.Thread(target=self._read, args=(chunks,), daemon=True).start()

    def _read(self, chunks: Iterable[Any]) -> None:
        try:
            for chunk in chunks:
                self._q.put(_wire.steps(chunk))
        except BaseException as e:  # handed to the consumer, raised there
            self._q.put(e)
        self._q.put(_END)

    def _waiting(self) -> Iterator[Any]:
        while True:
            try:
                yield self._q.get_nowait()
            except queue.Empty:
                return

    def take(self, max_steps: int) -> Batch | None:
        first = self._held if self._held is not None else self._q.get()
        self._held = None
        if isinstance(first, BaseException):
            raise first
        if first is _END:
            self._held = _END
            return None
        batch, self._held = _gather(first, self._waiting(), max_steps)
        return batch


def stream_sync(session: Session, chunks: Iterable[Any], max_steps: int) -> Iterator[Array]:
    client = session.client
    feed = _Feed(chunks)
    ws: ClientConnection | None = None
    number = 0
    try:
        while (batch := feed.take(max_steps)) is not None:
            number += 1
            text = batch.message(session.current_step, number)
            retry = client.retry()
            while True:
                try:
                    if ws is None:
                        url = _wire.ws_url(client.base_url, session.id)
                        ws = connect(  # entered, not `with`: a drop replaces it
                            url,
                            additional_headers=_headers(client.api_key),
                            open_timeout=client.timeout,
                        ).__enter__()
                    ws.send(text.decode())
                    msg, wait = _answer(ws.recv(timeout=client.timeout), retry)
                except _DROPS as e:
                    if ws is not None:
                        ws.close()
                    ws, msg = None, None
                    client.next_replica()
                    if (wait := retry.delay()) is None:
                        raise TransportError(f"stream of {session.id}: {e!r}") from e
                if msg is not None:
                    break
                time.sleep(wait or 0)
            session.current_step = int(msg["step"])
            yield from batch.split(msg["outputs"])
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
    await q.put(_END)


def _waiting_async(q: asyncio.Queue[Any]) -> Iterator[Any]:
    while True:
        try:
            yield q.get_nowait()
        except asyncio.QueueEmpty:
            return


async def stream_async(
    session: AsyncSession, chunks: Iterable[Any] | AsyncIterable[Any], max_steps: int
) -> AsyncIterator[Array]:
    client = session.client
    q: asyncio.Queue[Any] = asyncio.Queue(_FEED_DEPTH)
    reader = asyncio.create_task(_read_async(chunks, q))
    ws: AsyncConnection | None = None
    held: Any = None
    number = 0
    try:
        while True:
            first = held if held is not None else await q.get()
            if isinstance(first, BaseException):
                raise first
            if first is _END:
                return
            batch, held = _gather(first, _waiting_async(q), max_steps)
            number += 1
            text = batch.message(session.current_step, number).decode()
            retry = client.retry()
            while True:
                try:
                    if ws is None:
                        url = _wire.ws_url(client.base_url, session.id)
                        ws = await aconnect(
                            url,
                            additional_headers=_headers(client.api_key),
                            open_timeout=client.timeout,
                        )
                    await ws.send(text)
                    async with asyncio.timeout(client.timeout):
                        reply = await ws.recv()
                    msg, wait = _answer(reply, retry)
                except _DROPS as e:
                    if ws is not None:
                        await ws.close()
                    ws, msg = None, None
                    client.next_replica()
                    if (wait := retry.delay()) is None:
                        raise TransportError(f"stream of {session.id}: {e!r}") from e
                if msg is not None:
                    break
                await asyncio.sleep(wait or 0)
            session.current_step = int(msg["step"])
            for out in batch.split(msg["outputs"]):
                yield out
    finally:
        reader.cancel()
        if ws is not None:
            await ws.close()
