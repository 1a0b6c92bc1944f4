"""The Redis store's edges: the client, its failures as domain errors, session hashes and
script replies decoded into sessions and errors."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError
from seqserve.service.errors import (
    Conflict,
    Gone,
    NotFound,
    Overloaded,
    SeqServeError,
    StepConflict,
    Unavailable,
)
from seqserve.service.state.packing import unpack_replay
from seqserve.service.state.store import Session

META = struct.Struct("<ddd")  # created_at, idle_ttl_s, ttl_s


def ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


def connect(url: str, max_connections: int) -> Redis:
    """A pooled client; a restart or blip is retried briefly, an outage fails fast."""
    pool = ConnectionPool.from_url(  # the blocking pool costs ~15 µs more per command
        url,
        max_connections=max_connections,
        socket_connect_timeout=1.0,
        socket_timeout=5.0,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), 2),
    )
    return Redis.from_pool(pool)


@contextmanager
def reachable(retry_after_s: int) -> Iterator[None]:
    """Redis being down or restarting is a 503 with Retry-After, not a 500."""
    try:
        yield
    except MaxConnectionsError as exc:
        raise Unavailable(
            "too many concurrent session store operations; retry shortly", retry_after_s
        ) from exc
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable(
            "the session store (Redis) is unreachable; retry shortly", retry_after_s
        ) from exc


def decode_session(session_id: str, fields: dict[bytes, bytes]) -> Session:
    created_at, idle_ttl_s, ttl_s = META.unpack(fields[b"meta"])
    replay = fields.get(b"replay")
    return Session(
        id=session_id,
        model=fields[b"model"].decode(),
        version=fields[b"version"].decode(),
        owner=fields[b"owner"].decode() or None,
        step=int(fields[b"step"]),
        created_at=created_at,
        last_used=float(fields[b"lu"]),
        idle_ttl_s=idle_ttl_s,
        ttl_s=ttl_s,
        replay=unpack_replay(replay) if replay else None,
    )


def missing(session_id: str, tombstone: object) -> SeqServeError:
    """No hash: 410 while its tombstone lives (expired, evicted), else 404."""
    if isinstance(tombstone, bytes):
        reason = tombstone.decode()
        return Gone(f"session {session_id} was {reason}", session_id=session_id, reason=reason)
    return NotFound(f"no session {session_id}", session_id=session_id)


def refusal(
    why: bytes, session_id: str, max_sessions: int, max_bytes: int, retry_after_s: int
) -> SeqServeError:
    """The CREATE script's refusal: the id is taken, or a cap is reached (429)."""
    if why == b"exists":
        return Conflict(f"session {session_id} already exists", session_id=session_id)
    detail = (
        f"session cap reached ({max_sessions} live sessions)"
        if why == b"sessions"
        else f"state memory cap reached ({max_bytes} bytes)"
    )
    return Overloaded(detail, retry_after_s, max_sessions=max_sessions, max_state_bytes=max_bytes)


def save_error(session_id: str, code: int | bytes) -> SeqServeError | None:
    """One session's result from the SAVE script (see redis_lua.SAVE)."""
    if isinstance(code, bytes):
        return missing(session_id, code)
    if code == -1:
        return None
    if code == -2:
        return Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
    if code == -3:
        return NotFound(f"no session {session_id}", session_id=session_id)
    return StepConflict(
        f"another request committed first: the session is at step {code}", current_step=code
    )
