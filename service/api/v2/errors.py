"""V2 errors: `{"error": "..."}` bodies with Triton's status mapping, on every /v2 route.

Triton answers invalid arguments (bad JSON, shapes, datatypes, sequence misuse) with 400 and
unknown models with 404. seqserve keeps the statuses Triton has no code for: 401 (API key),
413 (body too large, also once decompressed) and 429 + Retry-After (session cap).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from seqserve.service.errors import SeqServeError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

# seqserve statuses Triton spells as INVALID_ARG (400)
_AS_TRITON = {409: 400, 410: 400, 422: 400}


class V2Error(SeqServeError):
    """An error carrying Triton's message; 400 (INVALID_ARG) unless told otherwise."""

    status, title, slug = 400, "Invalid argument", "invalid-argument"

    def __init__(
        self, detail: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers.update(headers or {})


def not_found(model: str, version: str | None = None) -> V2Error:
    which = f"'{model}'" if version is None else f"'{model}' version {version}"
    return V2Error(f"Request for unknown model: {which} is not found", status=404)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def from_domain(exc: SeqServeError) -> Response:
    return error_response(_AS_TRITON.get(exc.status, exc.status), exc.detail, exc.headers)


class V2Route(APIRoute):
    """A route whose errors, dependencies' included, leave as `{"error": ...}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SeqServeError as exc:
                return from_domain(exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()))
                return error_response(400, f"{where}: {first.get('msg', 'invalid request')}")
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

        return handle


fallback = APIRouter(route_class=V2Route, include_in_schema=False)


@fallback.api_route("/v2/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def unknown_path(path: str) -> Response:
    """Anything else under /v2 answers as Triton does, not with a problem document."""
    return error_response(404, "Not Found")
