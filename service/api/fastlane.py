"""The fast lane: `POST /v1/sessions/{id}/steps` and `POST /v2/.../infer` straight from ASGI.

A step is the request seqserve serves most; FastAPI's routing and dependency machinery cost
more than the step itself. This middleware answers these two with the same functions,
answers and errors as their documented routes (`api/sessions.py`, `api/v2/infer.py`), which
stay in the OpenAPI spec and answer the same way should a request reach them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from seqserve.service.api.arrays import steps_array
from seqserve.service.api.fastbody import parse_body
from seqserve.service.api.problems import validation_problem
from seqserve.service.api.responses import problem_response
from seqserve.service.api.schemas import StepRequest
from seqserve.service.api.v2.errors import error_response, from_domain
from seqserve.service.api.v2.infer import run_infer
from seqserve.service.errors import SeqServeError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

_STEP = re.compile(r"^/v1/sessions/([^/]+)/steps$")
_INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"seqserve-replayed", b"true")


class _StepRoute:
    path = "/v1/sessions/{session_id}/steps"  # the metrics label, as for the routed request


class _InferRoute:
    path = "/v2/models/{model}/infer"


class _InferVersionRoute:
    path = "/v2/models/{model}/versions/{version}/infer"


class FastLane:
    """Answers the two hot paths (v1 steps, V2 infer) before FastAPI's routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if (step := _STEP.match(path)) is not None:
                await self._step(scope, receive, send, step.group(1))
                return
            if (infer := _INFER.match(path)) is not None:
                await self._infer(scope, receive, send, infer.group(1), infer.group(2))
                return
        await self.app(scope, receive, send)

    async def _step(self, scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
        scope["route"] = _StepRoute
        key = dict(scope["headers"]).get(b"x-api-key")
        try:
            content, replayed = await run_step(
                scope["app"].state,
                session_id,
                None if key is None else key.decode("latin-1"),
                await _read(receive),
            )
        except SeqServeError as error:
            await problem_response(error, scope["path"])(scope, receive, send)
            return
        except RequestValidationError as error:
            await validation_problem(error, scope["path"])(scope, receive, send)
            return
        headers = [_JSON, (b"content-length", str(len(content)).encode())]
        if replayed:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, model: str, version: str | None
    ) -> None:
        scope["route"] = _InferRoute if version is None else _InferVersionRoute
        request = Request(scope, receive)
        state: Any = scope["app"].state
        response: Response
        try:
            owner = state.keys.owner(request.headers.get("x-api-key"))
            response = await run_infer(request, state.engine, owner, model, version)
        except SeqServeError as error:
            response = from_domain(error)
        except HTTPException as error:  # the body limit
            response = error_response(
                error.status_code, str(error.detail), dict(error.headers or {})
            )
        await response(scope, receive, send)


async def run_step(
    state: Any, session_id: str, api_key: str | None, raw_body: bytes
) -> tuple[bytes, bool]:
    """One step request, from the app's state to the JSON answer (and whether replayed)."""
    owner = state.keys.owner(api_key)
    request = parse_body(StepRequest, raw_body)
    result = await state.engine.step(session_id, owner, steps_array(request.inputs), request.step)
    reply = {"outputs": result.outputs, "step": result.step, "replayed": result.replayed}
    return orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY), result.replayed


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
