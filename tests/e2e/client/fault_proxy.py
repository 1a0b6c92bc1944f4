"""A loopback TCP proxy that loses requests and answers, to prove the client exactly-once.

HTTP: one exchange per connection (the proxy asks the server to close after it). Per
connection it draws: drop the request before forwarding it, forward it and lose the answer
after the server applied it, or pass. WebSocket (an Upgrade request): every chunk read from
either side may instead cut the connection, so frames die on the way in or on the way out; a
chunk of answers may hold several, all lost at once. The proxy counts data frames each way:
`max_in_flight` is the most requests it had passed on whose answers it had not (a client
with one message in flight never gets above 1), `max_lost_at_cut` the most of those a cut
left unanswered.
Seeded, loopback only, every wait bounded; an asyncio loop on its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
from collections import Counter
from concurrent.futures import Future

_WAIT_S = 30.0  # no read outlives a stuck test
_CONNECTION = re.compile(rb"\r\nconnection:[^\r]*", re.IGNORECASE)


class FrameCounter:
    """Counts complete WebSocket data frames (text, binary) in a byte stream fed in chunks,
    after the HTTP head that opens it when `head` (the server's 101 answer)."""

    def __init__(self, head: bool = False) -> None:
        self._buf = b""
        self._head = head

    def feed(self, data: bytes) -> int:
        self._buf += data
        if self._head:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return 0
            self._buf, self._head = self._buf[end + 4 :], False
        frames = 0
        while len(self._buf) >= 2:
            opcode, length, at = self._buf[0] & 0x0F, self._buf[1] & 0x7F, 2
            if length >= 126:
                width = 2 if length == 126 else 8
                if len(self._buf) < at + width:
                    break
                length = int.from_bytes(self._buf[at : at + width], "big")
                at += width
            at += 4 if self._buf[1] & 0x80 else 0  # the client's masking key
            if len(self._buf) < at + length:
                break
            self._buf = self._buf[at + length :]
            frames += opcode in (1, 2)
        return frames


class FaultProxy:
    def __init__(
        self, target_port: int, seed: int, drop: float = 0.15, lose: float = 0.15, cut: float = 0.1
    ) -> None:
        self.target_port = target_port
        self.rng = random.Random(seed)
        self.drop, self.lose, self.cut = drop, lose, cut
        self.counts: Counter[str] = Counter()  # what happened: dropped, lost, passed, cut
        self.max_in_flight = 0  # WebSocket messages passed on, answers not yet passed back
        self.max_lost_at_cut = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(_WAIT_S)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._handlers):  # connections still open: their sockets close
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(_WAIT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_WAIT_S)
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        opened = [writer]  # every socket of this connection, closed whatever happens
        try:
            async with asyncio.timeout(_WAIT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            if b"upgrade: websocket" in head.lower():
                await self._websocket(head, reader, writer, opened)
            else:
                await self._exchange(head, reader, writer, opened)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            self.counts["broken"] += 1
        finally:
            for w in opened:
                w.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await w.wait_closed()
            self._handlers.discard(task)

    async def _upstream(
        self, opened: list[asyncio.StreamWriter]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        opened.append(upstream)
        return up_reader, upstream

    async def _exchange(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opened: list[asyncio.StreamWriter],
    ) -> None:
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        async with asyncio.timeout(_WAIT_S):
            body = await reader.readexactly(int(length.group(1))) if length else b""
        draw = self.rng.random()
        if draw < self.drop:
            self.counts["dropped"] += 1
            return
        head = _CONNECTION.sub(b"", head).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        up_reader, upstream = await self._upstream(opened)
        upstream.write(head + body)
        async with asyncio.timeout(_WAIT_S):
            answer = await up_reader.read()  # the server closes after answering
        if draw < self.drop + self.lose:
            self.counts["lost"] += 1
            return
        self.counts["passed"] += 1
        writer.write(answer)
        await writer.drain()

    async def _websocket(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        opened: list[asyncio.StreamWriter],
    ) -> None:
        up_reader, upstream = await self._upstream(opened)
        upstream.write(head)
        self.counts["websockets"] += 1
        cut = asyncio.Event()
        passed = {"request": 0, "answer": 0}  # data frames passed on, each way
        counters = {"request": FrameCounter(), "answer": FrameCounter(head=True)}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, side: str) -> None:
            try:
                while not cut.is_set():
                    async with asyncio.timeout(_WAIT_S):
                        data = await src.read(65536)
                    if not data:
                        break
                    if self.rng.random() < self.cut:
                        self.counts[f"cut {side}"] += 1
                        unanswered = passed["request"] - passed["answer"]
                        self.max_lost_at_cut = max(self.max_lost_at_cut, unanswered)
                        break
                    passed[side] += counters[side].feed(data)
                    in_flight = passed["request"] - passed["answer"]
                    self.max_in_flight = max(self.max_in_flight, in_flight)
                    dst.write(data)
                    await dst.drain()
            finally:  # a peer reset ends the other direction too (its error is gathered below)
                cut.set()

        tasks = [
            asyncio.create_task(pipe(reader, upstream, "request")),
            asyncio.create_task(pipe(up_reader, writer, "answer")),
        ]
        await cut.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
