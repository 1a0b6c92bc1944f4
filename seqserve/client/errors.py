"""Typed client exceptions, built from the server's problem details (RFC 9457) or V2 errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SeqServeClientError(Exception):
    """Base class. `problem` holds the server's problem details (empty for transport errors)."""

    def __init__(self, message: str, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = dict(problem) if isinstance(problem, Mapping) else {}
        self.detail: str = str(self.problem.get("detail", message))
        self.title: str | None = self.problem.get("title")
        self.type: str | None = self.problem.get("type")

    @property
    def current_step(self) -> int | None:
        value = self.problem.get("current_step")
        return value if isinstance(value, int) else None


class TransportError(SeqServeClientError):
    """No answer came back (connection refused or dropped, timeout) within the retry budget."""


class BadInput(SeqServeClientError):
    """400/413/422: the request was refused as it stands; resending it will not help."""


class Unauthorized(SeqServeClientError):
    """401: missing or wrong API key."""


class NotFound(SeqServeClientError):
    """404: no such model, version or session (for this API key)."""


class Conflict(SeqServeClientError):
    """409 other than a step conflict (e.g. a session id owned by another caller)."""


class StepConflict(Conflict):
    """409: the session is not where this request expected it (`current_step` says where it
    is), and the request was not the last one applied, so it was not applied now either."""

    @property
    def expected_step(self) -> int | None:
        value = self.problem.get("expected_step")
        return value if isinstance(value, int) else None


class SessionGone(SeqServeClientError):
    """410: the session expired, was evicted or deleted."""


class Overloaded(SeqServeClientError):
    """429/503 still refused when the retry deadline ran out; `retry_after_s` as advised."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        problem: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status, problem)
        self.retry_after_s = retry_after_s


class ServerError(SeqServeClientError):
    """5xx other than 503."""


class StreamBroken(SeqServeClientError):
    """A stream could not resume exactly where it stopped (the session moved on meanwhile)."""


_BY_STATUS: dict[int, type[SeqServeClientError]] = {
    400: BadInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    410: SessionGone,
    413: BadInput,
    422: BadInput,
    429: Overloaded,
    503: Overloaded,
}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds form; dates are ignored)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def error_from(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Exception:
    """The typed exception for an error answer: v1 problem details or V2 `{"error": ...}`."""
    problem: dict[str, Any] = dict(body) if isinstance(body, Mapping) else {}
    if "error" in problem and isinstance(problem["error"], Mapping):  # a WebSocket error frame
        problem = dict(problem["error"])
    elif isinstance(problem.get("error"), str):  # V2
        params = problem.get("parameters")
        problem = {"detail": problem["error"], **(params if isinstance(params, Mapping) else {})}
        if "sequence_step" in problem:  # the seqserve V2 extension names it so
            problem["current_step"] = problem["sequence_step"]
    status = int(problem.get("status", status))
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    message = f"{status} {detail}"
    if status == 409 and (
        str(problem.get("type", "")).endswith("/step-conflict") or "current_step" in problem
    ):
        return StepConflict(message, status, problem)
    kind = _BY_STATUS.get(status)
    if kind is Overloaded:
        return Overloaded(message, status, problem, retry_after(headers or {}))
    if kind is None:
        kind = ServerError if status >= 500 else SeqServeClientError
    return kind(message, status, problem)
