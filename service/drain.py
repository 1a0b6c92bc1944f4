"""Graceful drain: uvicorn's server with a drain phase in front of its shutdown.

On the first SIGTERM/SIGINT the app starts draining at once (readiness and new sessions
answer 503 with Retry-After, steps of existing sessions still run). After `delay_s`, time for
a load balancer to notice, uvicorn stops listening and gives in-flight requests up to its
`timeout_graceful_shutdown` to finish; then the lifespan ends (snapshot, close). A second
signal skips what is left of the delay.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import FrameType

import uvicorn


class DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, begin_drain: Callable[[], None], delay_s: float
    ) -> None:
        super().__init__(config)
        self._begin_drain = begin_drain
        self._delay_s = delay_s
        self._pending: tuple[int, float] | None = None  # (signal, when it arrived)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # runs in the signal handler: only set flags here
        if self._pending is None and self._delay_s > 0:
            self._begin_drain()
            self._pending = (sig, time.monotonic())
            return
        self._begin_drain()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._pending is not None and not self.should_exit:
            self._begin_drain()  # again: a signal during start-up came before the app could
            sig, since = self._pending
            if time.monotonic() - since >= self._delay_s:
                super().handle_exit(sig, None)
        return await super().on_tick(counter)
