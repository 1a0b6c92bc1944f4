"""Pick the state store the settings ask for: in-process memory or Redis shared by replicas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqserve.service.metrics import Metrics
from seqserve.service.settings import Settings
from seqserve.service.state.memory import MemoryStateStore
from seqserve.service.state.store import StateStore

if TYPE_CHECKING:
    from seqserve.service.state.redis_store import RedisStateStore

REDIS_EXTRA = 'state_store=redis needs the Redis client: pip install "seqserve[redis]"'


class MissingExtra(RuntimeError):
    """The settings ask for a part whose optional dependencies are not installed."""


def _redis_store_class() -> type[RedisStateStore]:
    # Imported only when asked for: the redis client is the optional `redis` extra.
    try:
        from seqserve.service.state.redis_store import RedisStateStore
    except ModuleNotFoundError as exc:
        if exc.name != "redis" and not (exc.name or "").startswith("redis."):
            raise
        raise MissingExtra(REDIS_EXTRA) from exc
    return RedisStateStore


def open_store(settings: Settings, metrics: Metrics) -> StateStore:
    limits, lifetimes = settings.limits, settings.sessions
    common: dict[str, Any] = {
        "max_sessions": limits.max_sessions,
        "max_state_bytes": limits.max_state_bytes,
        "retry_after_s": limits.retry_after_s,
        "tombstone_ttl_s": lifetimes.tombstone_ttl_s,
        "evict_idle_s": lifetimes.evict_idle_s,
        "replay_depth": lifetimes.replay_depth,
        "on_expired": metrics.sessions_expired.inc,
        "on_evicted": metrics.sessions_evicted.inc,
    }
    store: StateStore
    if settings.state_store == "redis":
        assert settings.redis_url is not None  # the settings validator guarantees it
        url = settings.redis_url.get_secret_value()
        redis: dict[str, Any] = {
            "cluster": settings.redis_cluster,
            "shards": settings.redis_shards,
            "wait_replicas": settings.redis_wait_replicas,
            "wait_timeout_ms": settings.redis_wait_timeout_ms,
        }
        store = _redis_store_class()(url, settings.redis_prefix, **common, **redis)
    else:
        store = MemoryStateStore(**common)
    metrics.watch_store(store.stats)
    return store
