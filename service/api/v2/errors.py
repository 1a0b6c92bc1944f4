"""The V2 error renderer: `{"error": "..."}` bodies with Triton's status mapping.

Triton answers invalid arguments (bad JSON, shapes, datatypes, sequence misuse) with 400 and
unknown models with 404. seqserve keeps the statuses Triton has no code for: 401 (API key),
413 (body too large, also once decompressed) and 429 + Retry-After (session cap).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from seqserve.service.errors import SeqServeError
from starlette.responses import Response

# seqserve statuses Triton spells as INVALID_ARG (400)
_AS_TRITON = {409: 400, 410: 400, 422: 400}


class V2Error(SeqServeError):
    """An error carrying Triton's message; 400 (INVALID_ARG) unless told otherwise."""

    status, title, slug = 400, "Invalid argument", "invalid-argument"

    def __init__(
        self,
        detail: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers.update(headers or {})
        self.parameters = parameters or {}  # e.g. `sequence_step` on a step conflict


def not_found(model: str, version: str | None = None) -> V2Error:
    which = f"'{model}'" if version is None else f"'{model}' version {version}"
    return V2Error(f"Request for unknown model: {which} is not found", status=404)


def error_response(error: SeqServeError) -> Response:
    """The V2 answer to an error (the only place V2 error bodies are built)."""
    body: dict[str, Any] = {"error": error.detail}
    status = _AS_TRITON.get(error.status, error.status)
    if isinstance(error, V2Error):  # its status is already the V2 one (409: sequence_step)
        status = error.status
        if error.parameters:
            body["parameters"] = error.parameters
    return Response(
        orjson.dumps(body), status_code=status, headers=error.headers, media_type="application/json"
    )


fallback = APIRouter(include_in_schema=False)


@fallback.api_route("/v2/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown_path(path: str) -> Response:
    """Anything else under /v2 answers as Triton does: 404, whatever the method."""
    return error_response(V2Error("Not Found", status=404))
