"""Fast JSON responses (orjson, NumPy arrays serialised natively) and problem details."""

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


def problem(status: int, title: str, slug: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem details body."""
    return {
        "type": f"https://seqserve.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def problem_response(error: SeqServeError, instance: str | None = None) -> Problem:
    body = problem(error.status, error.title, error.slug, error.detail, **error.extra)
    if instance:
        body["instance"] = instance
    return Problem(body, status_code=error.status, headers=error.headers)
