"""Session endpoints: create, inspect, step, forecast, reset, fork, state, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from seqserve.service.api.deps import CallerDep, EngineDep, OwnerDep
from seqserve.service.api.fastbody import body_schema
from seqserve.service.api.fastlane import run_step
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.schemas import CreateSessionRequest, ForecastRequest, StepRequest
from seqserve.service.state.store import Session
from starlette.responses import Response

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


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


@router.post(
    "/{session_id}/steps",
    summary="Feed timesteps; get their outputs",
    openapi_extra={
        **body_schema(StepRequest),
        "parameters": [
            {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
    },
)
async def step(request: Request) -> Response:
    # served by the fast lane (api/fastlane.py) before routing; this route documents it and
    # answers the same way should a request reach it
    content, replayed = await run_step(
        request.app.state,
        request.path_params["session_id"],
        request.headers.get("x-api-key"),
        await request.body(),
    )
    headers = {"Seqserve-Replayed": "true"} if replayed else None
    return Response(content, media_type="application/json", headers=headers)


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
