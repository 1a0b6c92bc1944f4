"""Domain errors. Each carries its HTTP status; adapters turn them into their wire format."""

from __future__ import annotations

from typing import Any


class SeqServeError(Exception):
    """Base class: `status`, a short `title`, a problem `slug`, and fields that help a fix."""

    status = 500
    title = "Internal error"
    slug = "internal"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadInput(SeqServeError):
    status, title, slug = 422, "Invalid input", "invalid-input"


class MalformedRequest(SeqServeError):
    status, title, slug = 400, "Malformed request", "malformed-request"


class Unauthorized(SeqServeError):
    status, title, slug = 401, "Missing or invalid API key", "unauthorized"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = "ApiKey"


class Forbidden(SeqServeError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(SeqServeError):
    status, title, slug = 404, "Not found", "not-found"


class StepConflict(SeqServeError):
    status, title, slug = 409, "Step index conflict", "step-conflict"


class Conflict(SeqServeError):
    status, title, slug = 409, "Conflict", "conflict"


class Gone(SeqServeError):
    status, title, slug = 410, "Session gone", "session-gone"


class VersionMoved(Exception):
    """Not an answer: the session runs another model version than the caller checked its
    request against; raised before anything changes, so the caller can check again."""

    def __init__(self, model: Any) -> None:
        super().__init__(f"the session runs version {model.manifest.version}")
        self.model = model  # the session's LoadedModel


class VersionUnloaded(Gone):
    """The session's model version was unloaded from this server (its state is kept)."""

    title, slug = "Model version unloaded", "version-unloaded"


class LoadRefused(SeqServeError):
    """A model version in the repository failed its checks; the served versions are unchanged."""

    status, title, slug = 422, "Model version refused", "load-refused"


class RequestTimeout(SeqServeError):
    status, title, slug = 408, "Request timeout", "request-timeout"


class TooLarge(SeqServeError):
    status, title, slug = 413, "Request too large", "too-large"


class Overloaded(SeqServeError):
    status, title, slug = 429, "Capacity reached", "capacity"

    def __init__(self, detail: str, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers["Retry-After"] = str(retry_after_s)


class Unavailable(SeqServeError):
    status, title, slug = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Retry-After"] = str(retry_after_s)


class StoreFull(Unavailable):
    """The state store is at its memory limit: creates and steps wait, deletes still free."""

    title, slug = "State store full", "store-full"


class StoreReadOnly(Unavailable):
    """The state store refuses writes (a replica, e.g. a demoted primary)."""

    title, slug = "State store read-only", "store-read-only"


class InferenceFailed(SeqServeError):
    """The model run failed; the step was not applied. Details go to the logs, not clients."""

    status, title, slug = 500, "Inference failed", "inference-failed"


class ModelLoadError(Exception):
    """A model directory that breaks the contract; the message says what disagreed."""
