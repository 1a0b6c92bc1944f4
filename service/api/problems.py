"""Exception handlers: every error leaves as RFC 9457 problem details."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from seqserve.service.api.middleware import BodyTooLarge, too_large
from seqserve.service.api.responses import Problem, problem, problem_response
from seqserve.service.errors import SeqServeError
from starlette.exceptions import HTTPException
from starlette.responses import Response

log = logging.getLogger("seqserve.errors")


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SeqServeError)
    return problem_response(exc, request.url.path)


def validation_problem(exc: RequestValidationError, instance: str) -> Problem:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()[:20]
    ]
    malformed = any(e["type"] == "json_invalid" for e in errors)
    status, slug = (400, "malformed-request") if malformed else (422, "invalid-input")
    title = "Malformed request" if malformed else "Invalid input"
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3])
    body = problem(status, title, slug, detail, errors=errors, instance=instance)
    return Problem(body, status_code=status)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip() != "application/json" and any(
        list(e.get("loc", ())) == ["body"] for e in exc.errors()
    ):  # FastAPI reads a JSON body only when it is labelled as one
        detail = f"send the body as JSON with Content-Type: application/json (got {content_type!r})"
        body = problem(415, "Unsupported media type", "unsupported-media-type", detail)
        return Problem(body, status_code=415)
    return validation_problem(exc, request.url.path)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, BodyTooLarge):
        return Problem(too_large(exc.limit), status_code=413, headers={"Connection": "close"})
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    body = problem(exc.status_code, str(exc.detail), slug, str(exc.detail))
    return Problem(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        extra={"request_id": request_id},
    )
    body = problem(500, "Internal error", "internal", "The server failed; see its logs.")
    return Problem(body, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SeqServeError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
