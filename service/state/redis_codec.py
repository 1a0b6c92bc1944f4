"""The Redis store's edges: the client's failures as domain errors, session hashes and
script replies decoded into sessions and errors, and the session ids that carry an epoch."""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis.exceptions import (
    AskError,
    ClusterError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from seqserve.service.errors import (
    Conflict,
    Gone,
    NotFound,
    Overloaded,
    SeqServeError,
    StepConflict,
    StoreFull,
    StoreReadOnly,
    Unavailable,
)
from seqserve.service.state.packing import unpack_replay
from seqserve.service.state.store import Session

META = struct.Struct("<ddd")  # created_at, idle_ttl_s, ttl_s
_RANDOM_CHARS, _EPOCH_CHARS = 24, 8  # token_urlsafe(18): 144 random bits; token_urlsafe(6)


@dataclass(slots=True)
class RedisSession(Session):
    """A session as get() read it, with what load() and save() take back from it: the state
    row read in the same HGETALL (load() then needs no round trip) and the revision it was
    read at (save() compares and sets on it, which also catches a reset and re-step)."""

    read_step: int = -1  # the step index these were read at
    read_rev: bytes = b""
    read_state: bytes = b""
    read_replay: bytes = b""  # the packed newest answer, and the older ones (see replies())
    read_older: bytes = b""


def fresh_parts() -> tuple[str, str]:
    """The random part of a fresh id and a candidate epoch (used if none is set yet)."""
    return secrets.token_urlsafe(18), secrets.token_urlsafe(6)


def epoch_of(session_id: str) -> str | None:
    """The epoch a fresh id was issued in; None for ids given by a caller (V2 sequences)."""
    head, dot, tail = session_id.rpartition(".")
    return tail if dot and len(head) == _RANDOM_CHARS and len(tail) == _EPOCH_CHARS else None


def ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


def _refused_write(exc: ResponseError, retry_after_s: int) -> Unavailable | None:
    """A write Redis refused for its state (full, read-only), not for a bug of ours. Errors
    raised inside a script arrive wrapped in "Error running script ... -OOM ...", hence the
    search in the message next to the exception class."""
    text = str(exc)
    if isinstance(exc, OutOfMemoryError) or "OOM command not allowed" in text:
        detail = "the session store (Redis) is full (maxmemory): delete sessions or retry later"
        return StoreFull(detail, retry_after_s)
    if isinstance(exc, ReadOnlyError) or "READONLY" in text or "MISCONF" in text:
        detail = "the session store (Redis) is read-only (a replica or a failing disk); retry"
        return StoreReadOnly(detail, retry_after_s)
    return None


def transport_closed(exc: BaseException) -> bool:
    """A connection dropped by a dying node while the client set it up: uvloop raises a
    bare RuntimeError that redis-py passes on unwrapped; and redis-py's cluster client, racing
    a failover, can write to a connection it has just torn down (its writer is None): an
    AttributeError raised inside redis-py itself (never ours: the last frame says where)."""
    if isinstance(exc, RuntimeError):
        return "handler is closed" in str(exc)
    if isinstance(exc, AttributeError) and "'NoneType' object" in str(exc):
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = tb.tb_frame.f_code.co_filename.replace("\\", "/") if tb is not None else ""
        return "/redis/" in where
    return False


@contextmanager
def reachable(retry_after_s: int) -> Iterator[None]:
    """Redis down, restarting, full or read-only, or a cluster failing over, is a 503 with
    Retry-After, not a 500."""
    try:
        yield
    except (AskError, ClusterError, TryAgainError, RedisClusterException) as exc:  # MOVED too
        raise Unavailable(
            "the session store (Redis Cluster) is failing over or resharding; retry shortly",
            retry_after_s,
        ) from exc
    except ResponseError as exc:
        refused = _refused_write(exc, retry_after_s)
        if refused is None:
            raise
        raise refused from exc
    except MaxConnectionsError as exc:
        raise Unavailable(
            "too many concurrent session store operations; retry shortly", retry_after_s
        ) from exc
    except (RuntimeError, AttributeError) as exc:
        if not transport_closed(exc):
            raise
        raise Unavailable(
            "the session store (Redis) is unreachable; retry shortly", retry_after_s
        ) from exc
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable(
            "the session store (Redis) is unreachable; retry shortly", retry_after_s
        ) from exc


def decode_session(session_id: str, fields: dict[bytes, bytes]) -> RedisSession:
    created_at, idle_ttl_s, ttl_s = META.unpack(fields[b"meta"])
    replay = fields.get(b"replay")
    step = int(fields[b"step"])
    return RedisSession(
        id=session_id,
        model=fields[b"model"].decode(),
        version=fields[b"version"].decode(),
        owner=fields[b"owner"].decode() or None,
        step=step,
        created_at=created_at,
        last_used=float(fields[b"lu"]),
        idle_ttl_s=idle_ttl_s,
        ttl_s=ttl_s,
        replay=unpack_replay(replay) if replay else None,
        read_step=step,
        read_rev=fields.get(b"rev", b""),
        read_state=fields[b"state"],
        read_replay=replay or b"",
        read_older=fields.get(b"older", b""),
    )


def missing(session_id: str, tombstone: object, epoch: object) -> SeqServeError:
    """No hash: 410 while its tombstone lives (expired, evicted) or when the id is from an
    older epoch (Redis lost its data: restarted without persistence, flushed), else 404."""
    if isinstance(tombstone, bytes):
        reason = tombstone.decode()
        return Gone(f"session {session_id} was {reason}", session_id=session_id, reason=reason)
    issued = epoch_of(session_id)
    if issued is not None and (not isinstance(epoch, bytes) or epoch.decode() != issued):
        return Gone(
            f"session {session_id} is gone: the state store lost its data (e.g. Redis "
            "restarted without persistence)",
            session_id=session_id,
            reason="store-lost",
        )
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


def save_error(session_id: str, code: int | bytes, epoch: bytes | None) -> SeqServeError | None:
    """One session's result from the SAVE script (see redis_lua.SAVE)."""
    if isinstance(code, bytes):
        return missing(session_id, code, epoch)
    if code == -1:
        return None
    if code == -2:
        return Gone(f"session {session_id} was expired", session_id=session_id, reason="expired")
    if code == -3:
        return missing(session_id, None, epoch)
    return StepConflict(
        f"another request committed first: the session is at step {code}", current_step=code
    )
