"""The step fast lane: `POST /v1/sessions/{id}/steps` answered straight from ASGI.

A step is the request seqserve serves most; FastAPI's routing and dependency machinery cost
more than the step itself. This middleware answers it with the same parsing, engine call,
answers and errors as the documented route in `api/sessions.py` (which stays in the OpenAPI
spec and serves any request this lane passes on).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.arrays import steps_array
from service.api.fastbody import parse_body
from service.api.problems import validation_problem
from service.api.responses import problem_response
from service.api.schemas import StepRequest
from service.errors import SeqServeError

_PATH = re.compile(r"^/v1/sessions/([^/]+)/steps$")
_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"seqserve-replayed", b"true")


class _Route:
    path = "/v1/sessions/{session_id}/steps"  # the metrics label, as for the routed request


class StepFastLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = _Route
        key = dict(scope["headers"]).get(b"x-api-key")
        try:
            body = await run_step(
                scope["app"].state,
                match.group(1),
                None if key is None else key.decode("latin-1"),
                await _read(receive),
            )
        except SeqServeError as error:
            await problem_response(error, scope["path"])(scope, receive, send)
            return
        except RequestValidationError as error:
            await validation_problem(error, scope["path"])(scope, receive, send)
            return
        content, replayed = body
        headers = [_JSON, (b"content-length", str(len(content)).encode())]
        if replayed:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


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
