"""When to resend a request and how long to wait first: pure decisions, unit-tested alone."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

RETRY_STATUS = frozenset({429, 502, 503, 504})  # refused or lost before applying: resend


@dataclass
class Retry:
    """One request's retry budget: at most `retries` resends, all within `deadline_s`."""

    retries: int = 8
    deadline_s: float = 30.0
    base_s: float = 0.05
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    started: float = field(default_factory=time.monotonic)

    def delay(self, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent.
        Full jitter on an exponential backoff; a server's Retry-After is a floor (plus up to
        10% jitter, so a crowd told the same number does not come back at once)."""
        if self.attempt >= self.retries:
            return None
        self.attempt += 1
        wait = self.rng.uniform(0, min(self.cap_s, self.base_s * 2**self.attempt))
        if retry_after_s is not None:
            wait = max(wait, retry_after_s * self.rng.uniform(1.0, 1.1))
        left = self.deadline_s - (time.monotonic() - self.started)
        if wait > left:
            return None
        return wait


def should_retry(status: int) -> bool:
    return status in RETRY_STATUS
