"""Fast JSON responses (orjson, NumPy arrays serialised natively) and the v1 error renderer:
RFC 9457 problem details, for HTTP answers and WebSocket error frames alike."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse
from seqserve.service.errors import SeqServeError

_OPTS = orjson.OPT_SERIALIZE_NUMPY


class FastJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTS)


class Problem(FastJSON):
    media_type = "application/problem+json"


def problem_body(error: SeqServeError, instance: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem details of an error (the only place v1 error bodies are built)."""
    body: dict[str, Any] = {
        "type": f"https://seqserve.dev/problems/{error.slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        **error.extra,
    }
    if instance:
        body["instance"] = instance
    return body


def problem_response(error: SeqServeError, instance: str | None = None) -> Problem:
    return Problem(problem_body(error, instance), status_code=error.status, headers=error.headers)
