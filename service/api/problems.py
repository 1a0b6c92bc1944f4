"""Exception handlers: every error becomes a domain error and leaves through the renderer of
its path's protocol (`api/protocol.py`): v1 problem details or V2 `{"error"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from seqserve.service.api.fastbody import UnsupportedMediaType, is_json, validation_error
from seqserve.service.api.middleware import BodyTooLarge
from seqserve.service.api.protocol import render_error
from seqserve.service.errors import SeqServeError
from starlette.exceptions import HTTPException
from starlette.responses import Response

log = logging.getLogger("seqserve.errors")
_SLUGS = {404: "not-found", 405: "method-not-allowed"}


class HttpError(SeqServeError):
    """Starlette's HTTPException (unknown path, wrong method) as a domain error."""

    def __init__(self, exc: HTTPException) -> None:
        super().__init__(str(exc.detail))
        self.status = exc.status_code
        self.title = str(exc.detail)
        self.slug = _SLUGS.get(exc.status_code, "http-error")
        self.headers.update(exc.headers or {})


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SeqServeError)
    path = request.url.path
    return render_error(exc, path, instance=path)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    path = request.url.path
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type) and any(
        list(e.get("loc", ())) == ["body"] for e in exc.errors()
    ):  # FastAPI reads a JSON body only when it is labelled as one
        return render_error(UnsupportedMediaType(content_type), path)
    return render_error(validation_error(exc.errors()), path, instance=path)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = exc.error() if isinstance(exc, BodyTooLarge) else HttpError(exc)
    return render_error(error, request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        extra={"request_id": request_id},
    )
    # the base class is the generic 500; never the exception's own words
    return render_error(SeqServeError("The server failed; see its logs."), request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(SeqServeError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
