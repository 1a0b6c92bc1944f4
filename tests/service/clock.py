"""A wall clock the test moves by hand, so that TTL tests never race the real one."""

from __future__ import annotations

import time

import pytest


class FakeClock:
    """Stands in for `time.time` process-wide (every module calls `time.time()`); the
    monotonic clock, which asyncio and the batcher's deadlines use, stays real."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def install(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock(time.time())
    monkeypatch.setattr(time, "time", clock)
    return clock
