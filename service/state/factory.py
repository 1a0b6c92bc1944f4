"""Pick the state store the settings ask for: in-process memory or Redis shared by replicas."""

from __future__ import annotations

from typing import Any

from seqserve.service.metrics import Metrics
from seqserve.service.settings import Settings
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.redis_store import RedisStateStore
from seqserve.service.state.store import StateStore


def open_store(settings: Settings, metrics: Metrics) -> StateStore:
    limits, lifetimes = settings.limits, settings.sessions
    common: dict[str, Any] = {
        "max_sessions": limits.max_sessions,
        "max_state_bytes": limits.max_state_bytes,
        "retry_after_s": limits.retry_after_s,
        "tombstone_ttl_s": lifetimes.tombstone_ttl_s,
        "evict_idle_s": lifetimes.evict_idle_s,
        "on_expired": metrics.sessions_expired.inc,
        "on_evicted": metrics.sessions_evicted.inc,
    }
    store: StateStore
    if settings.state_store == "redis":
        assert settings.redis_url is not None  # the settings validator guarantees it
        url = settings.redis_url.get_secret_value()
        store = RedisStateStore(url, settings.redis_prefix, **common)
    else:
        store = MemoryStateStore(**common)
    metrics.watch_store(store.stats)
    return store
