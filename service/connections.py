"""uvicorn's httptools protocol with a deadline and a size bound on every request head.

Neither uvicorn nor httptools bounds a request head: a connection that never finishes its
headers is held forever, and a header of any size is buffered. Here a head must arrive within
`head_timeout_s` (counted from the connection's start for its first request, from the first
byte for later ones; idle keep-alive time is uvicorn's `timeout_keep_alive`) and within
`max_head_bytes`, else the connection gets 408 or 431 and is closed: after a short linger
that discards what the client still sends, so that its reset does not destroy the answer.

Deadlines, and uvicorn's keep-alive (`timeout_keep_alive`: an idle connection closes), are
checked by one sweep over the server's open connections every quarter of the shorter timeout
(at most 1 s), not by timers armed and cancelled for every request.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

LINGER_S = 2.0
MAX_SWEEP_PERIOD_S = 1.0
_sweeps: weakref.WeakKeyDictionary[ServerState, asyncio.TimerHandle] = weakref.WeakKeyDictionary()


def _refusal(status: int, reason: str, detail: str) -> bytes:
    body = orjson.dumps(
        {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpTools(HttpToolsProtocol):
    head_timeout_s = 10.0
    max_head_bytes = 64 << 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: float | None = None  # loop time; None once the head is in
        self._idle_deadline: float | None = None  # keep-alive: set while no request is open
        self._in_head = True  # until the first request's headers are complete
        self._head_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = self.loop.time() + self.head_timeout_s
        if self.server_state not in _sweeps:
            self._schedule_sweep()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering: discard
            return
        was_in_head = self._in_head
        super().data_received(data)
        # a head that began inside this chunk is not counted: it can overrun the bound by
        # one read at most, and a body sent with its head in one read is never mistaken
        if was_in_head and self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                detail = f"the request head exceeds {self.max_head_bytes} bytes"
                self._refuse(_refusal(431, "Request Header Fields Too Large", detail))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._head_deadline is None:
            self._head_deadline = self.loop.time() + self.head_timeout_s

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_deadline = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, with a keep-alive deadline for the sweep instead of a timer a request
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive

    def _unset_keepalive_if_required(self) -> None:
        self._idle_deadline = None
        super()._unset_keepalive_if_required()

    def _schedule_sweep(self) -> None:
        shortest = min(self.head_timeout_s, self.timeout_keep_alive)
        period = min(MAX_SWEEP_PERIOD_S, shortest / 4)
        _sweeps[self.server_state] = self.loop.call_later(
            period, _sweep, self.server_state, self.loop
        )

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._in_head and not self.transport.is_closing():
            detail = f"the request head did not arrive within {self.head_timeout_s:g} s"
            self._refuse(_refusal(408, "Request Timeout", detail))

    def _refuse(self, response: bytes) -> None:
        self._in_head = False
        self._head_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            # an earlier (pipelined) request is still answering: close once it is done
            self.cycle.keep_alive = False
            return
        self._refused = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def _sweep(state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    """Refuse the heads past their deadline and close connections idle past keep-alive; again
    a period later while connections are open."""
    del _sweeps[state]
    now = loop.time()
    guarded = [c for c in state.connections if isinstance(c, GuardedHttpTools)]
    for connection in guarded:
        deadline = connection._head_deadline
        if deadline is not None and deadline <= now:
            connection._head_timed_out()
        idle = connection._idle_deadline
        if idle is not None and idle <= now:
            connection._idle_deadline = None
            connection.timeout_keep_alive_handler()  # uvicorn's: closes the connection
    if guarded and state not in _sweeps:
        guarded[0]._schedule_sweep()


def guarded_protocol(head_timeout_s: float, max_head_bytes: int) -> type[HttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)` with these bounds."""
    return type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {"head_timeout_s": head_timeout_s, "max_head_bytes": max_head_bytes},
    )
