"""Per-caller caps on concurrent heavy calls (forecasts, forecast streams, stateless predicts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from seqserve.service.errors import Overloaded


class Slot:
    """One admitted heavy call; `release` may be called more than once."""

    def __init__(self, gate: HeavyGate, caller: str) -> None:
        self._gate = gate
        self._caller: str | None = caller

    def release(self) -> None:
        if self._caller is not None:
            self._gate._leave(self._caller)
            self._caller = None


class HeavyGate:
    """At most `per_caller` heavy calls in flight per caller; one more answers 429."""

    def __init__(self, per_caller: int, retry_after_s: int) -> None:
        self.per_caller = per_caller
        self.retry_after_s = retry_after_s
        self._running: dict[str, int] = {}

    def enter(self, caller: str) -> Slot:
        running = self._running.get(caller, 0)
        if running >= self.per_caller:
            raise Overloaded(
                f"{running} forecasts or predicts of yours are running, the most allowed at "
                "once: wait for one to finish",
                self.retry_after_s,
                max_heavy_per_client=self.per_caller,
            )
        self._running[caller] = running + 1
        return Slot(self, caller)

    @contextmanager
    def hold(self, caller: str) -> Iterator[None]:
        slot = self.enter(caller)
        try:
            yield
        finally:
            slot.release()

    def _leave(self, caller: str) -> None:
        left = self._running[caller] - 1
        if left:
            self._running[caller] = left
        else:  # no entry per caller that has gone quiet
            del self._running[caller]
