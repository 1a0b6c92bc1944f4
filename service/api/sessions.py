"""Session endpoints: create, inspect, step, forecast, reset, fork, state, delete.

`step` is the one handler of the hot path: the fast lane (`api/fastlane.py`) calls it straight
from ASGI, and its route below exists for the OpenAPI document only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from seqserve.service.api.arrays import steps_array
from seqserve.service.api.context import app_context
from seqserve.service.api.deps import CallerDep, EngineDep, OwnerDep
from seqserve.service.api.fastbody import body_schema, parse_body, read_body, require_json
from seqserve.service.api.keys import presented_key
from seqserve.service.api.responses import FastJSON, problem_response
from seqserve.service.api.schemas import CreateSessionRequest, ForecastRequest, StepRequest
from seqserve.service.errors import SeqServeError
from seqserve.service.state.store import Session
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"seqserve-replayed", b"true")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def session_view(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "model": s.model,
        "version": s.version,
        "step": s.step,
        "created_at": _iso(s.created_at),
        "last_used_at": _iso(s.last_used),
        "expires_at": _iso(s.expires_at),
        "idle_ttl_s": s.idle_ttl_s,
        "ttl_s": s.ttl_s,
    }


def _created(s: Session) -> FastJSON:
    return FastJSON(session_view(s), status_code=201, headers={"Location": f"/v1/sessions/{s.id}"})


async def step(scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
    """`POST /v1/sessions/{id}/steps`, from ASGI to the answer (errors as problem details)."""
    ctx = app_context(scope["app"])
    headers = scope["headers"]
    by_name = dict(headers)
    try:
        owner = ctx.keys.owner(presented_key(headers, by_name))
        require_json(by_name.get(b"content-type"))
        request = parse_body(StepRequest, await read_body(receive))
        result = await ctx.engine.step(session_id, owner, steps_array(request.inputs), request.step)
    except SeqServeError as error:
        await problem_response(error, scope["path"])(scope, receive, send)
        return
    reply = {"outputs": result.outputs, "step": result.step, "replayed": result.replayed}
    content = orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY)
    start = [_JSON, (b"content-length", str(len(content)).encode())]
    if result.replayed:
        start.append(_REPLAYED)
    await send({"type": "http.response.start", "status": 200, "headers": start})
    await send({"type": "http.response.body", "body": content})


@router.post(
    "/{session_id}/steps",
    name="step",
    summary="Feed timesteps; get their outputs",
    openapi_extra={
        **body_schema(StepRequest),
        "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
    },
)
async def step_documented() -> Response:
    raise NotImplementedError("answered by the fast lane (api/fastlane.py); this is documentation")


@router.post("", status_code=201, summary="Create a session (optionally from a state document)")
async def create_session(
    body: CreateSessionRequest, engine: EngineDep, owner: OwnerDep
) -> FastJSON:
    session = await engine.create_session(
        owner, body.model, body.version, body.idle_ttl_s, body.ttl_s, body.state
    )
    return _created(session)


@router.get("", summary="List the caller's sessions")
async def list_sessions(
    engine: EngineDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most sessions to list.")] = 1000,
) -> FastJSON:
    sessions = await engine.list_sessions(owner, limit + 1)
    listed = [session_view(s) for s in sessions[:limit]]
    return FastJSON({"sessions": listed, "truncated": len(sessions) > limit})


@router.get("/{session_id}", summary="Get a session")
async def get_session(session_id: str, engine: EngineDep, owner: OwnerDep) -> FastJSON:
    return FastJSON(session_view(await engine.get_session(session_id, owner)))


@router.post("/{session_id}/forecast", summary="Forecast N steps ahead; the state is unchanged")
async def forecast(
    session_id: str, body: ForecastRequest, engine: EngineDep, owner: OwnerDep, caller: CallerDep
) -> FastJSON:
    values, step = await engine.forecast(session_id, owner, body.horizon, caller)
    return FastJSON({"forecast": values, "step": step})


@router.post("/{session_id}/reset", summary="Reset the state to zero and the step to 0")
async def reset(session_id: str, engine: EngineDep, owner: OwnerDep) -> FastJSON:
    return FastJSON(session_view(await engine.reset(session_id, owner)))


@router.post("/{session_id}/fork", status_code=201, summary="Copy a session into a new one")
async def fork(session_id: str, engine: EngineDep, owner: OwnerDep) -> FastJSON:
    return _created(await engine.fork(session_id, owner))


@router.get("/{session_id}/state", summary="Export the portable state document")
async def export_state(session_id: str, engine: EngineDep, owner: OwnerDep) -> FastJSON:
    return FastJSON(await engine.export_state(session_id, owner))


@router.delete("/{session_id}", status_code=204, summary="Delete a session")
async def delete(session_id: str, engine: EngineDep, owner: OwnerDep) -> Response:
    await engine.delete(session_id, owner)
    return Response(status_code=204)
