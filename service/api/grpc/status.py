"""seqserve errors as gRPC status codes, the way Triton's gRPC frontend spells them.

Invalid arguments (including sequence misuse, step conflicts and gone sessions, as V2 HTTP
answers 400) are INVALID_ARGUMENT, unknown models NOT_FOUND, a refused API key
UNAUTHENTICATED, capacity (429) and not-ready (503) UNAVAILABLE with a `retry-after` trailer.
"""

from __future__ import annotations

import grpc
from seqserve.service.errors import SeqServeError

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.INVALID_ARGUMENT,
    410: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
}
INTERNAL_DETAIL = "internal error"  # never an exception's own text


def code_of(error: SeqServeError) -> grpc.StatusCode:
    return _CODES.get(error.status, grpc.StatusCode.INTERNAL)


def detail_of(error: SeqServeError) -> str:
    return error.detail if error.status < 500 or error.status == 503 else INTERNAL_DETAIL


def trailers_of(error: SeqServeError) -> tuple[tuple[str, str], ...]:
    retry = error.headers.get("Retry-After")
    return () if retry is None else (("retry-after", retry),)
