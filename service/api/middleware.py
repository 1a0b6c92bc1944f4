"""ASGI middleware: request ids, body-size limit and read timeout, latency metrics and access
logs."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from seqserve.service.api.body_deadlines import BodyDeadlines, BodyTimeout
from seqserve.service.api.protocol import render_error
from seqserve.service.errors import SeqServeError, TooLarge
from seqserve.service.metrics import Metrics
from seqserve.service.tracing import RequestSpan, Tracing
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("seqserve.access")
_UNMEASURED = {"/metrics", "/healthz", "/readyz"}
# FastAPI's docs routes set no route template of their own: label them by path, not "unmatched"
_DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body exceeds {limit} bytes")
        self.limit = limit

    def error(self) -> TooLarge:
        """As a domain error; the connection closes (the rest of the body is not read)."""
        error = TooLarge(str(self.detail), max_body_bytes=self.limit)
        error.headers["Connection"] = "close"
        return error


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout_s: float = 30.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.body_deadlines = BodyDeadlines(body_timeout_s)
        self._observers: dict[tuple[str, str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        # 128 random bits as 32 hex digits, as uuid4().hex without building a UUID (µs a request)
        request_id = given if _SAFE_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent_start = False
        span: RequestSpan | None = None
        if self.tracing is not None:
            span = self.tracing.start_request(scope["method"], scope.get("path", ""), headers)
            send = _with_headers(send, span.response_headers())
        length = headers.get(b"content-length", b"")
        if length.isdigit() and (len(length) > 18 or int(length) > self.max_body):
            too_large = BodyTooLarge(self.max_body).error()
            status = await self._render(scope, receive, send, request_id, too_large)
            self._record(scope, status, started, request_id, span)
            return
        received = 0
        receive = self.body_deadlines.receive(receive)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status = message["status"]
                sent_start = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except BodyTooLarge as exc:
            if sent_start:
                raise
            status = await self._render(scope, limited_receive, send, request_id, exc.error())
        except BodyTimeout as timeout:
            if sent_start:
                raise
            status = await self._render(scope, limited_receive, send, request_id, timeout.error())
        finally:
            self._record(scope, status, started, request_id, span)

    async def _render(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, error: SeqServeError
    ) -> int:
        response = render_error(error, scope.get("path", ""))
        response.headers["x-request-id"] = request_id
        await response(scope, receive, send)
        return error.status

    def _record(
        self,
        scope: Scope,
        status: int,
        started: float,
        request_id: str,
        span: RequestSpan | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        path = scope.get("path", "")
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or (path if path in _DOCS else "unmatched")
        if path not in _UNMEASURED:
            key = (template, scope["method"], status)
            observe = self._observers.get(key)
            if observe is None:  # one labels() lookup per route and status, not per request
                child = self.metrics.request_seconds.labels(template, scope["method"], str(status))
                observe = self._observers[key] = child.observe
            observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={"request_id": request_id, "duration_ms": round(elapsed * 1000, 3)},
            )
        if span is not None:  # after the access log, which carries its trace id
            span.end(status, getattr(route, "path", None))


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """`send` adding headers (the response's traceparent) to the response start."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return sending
