"""Streaming adapters: a WebSocket per session for steps, Server-Sent Events for forecasts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from seqserve.service.api.arrays import steps_array
from seqserve.service.api.context import app_context
from seqserve.service.api.deps import CallerDep, EngineDep, OwnerDep
from seqserve.service.api.keys import websocket_key, websocket_protocol
from seqserve.service.api.responses import problem_body
from seqserve.service.api.schemas import StepRequest, StreamMessage
from seqserve.service.engine import Engine
from seqserve.service.errors import (
    BadInput,
    Gone,
    MalformedRequest,
    NotFound,
    SeqServeError,
    Unauthorized,
)
from starlette.websockets import WebSocketDisconnect

router = APIRouter(tags=["streaming"])

# Close codes: 1003 a binary frame (send JSON text), 1009 too big (the server's frame limit),
# 4401 bad API key, 4404 no such session, 4410 the session expired or was deleted meanwhile,
# 1001 idle for longer than limits.ws_idle_timeout_s.
_CLOSE = {Unauthorized: 4401, NotFound: 4404, Gone: 4410}


def _close_code(error: SeqServeError) -> int | None:
    return next((code for kind, code in _CLOSE.items() if isinstance(error, kind)), None)


def _error_frame(error: SeqServeError, message_id: Any) -> str:
    return orjson.dumps({"error": problem_body(error), "id": message_id}).decode()


def _parse(text: str) -> tuple[StepRequest, Any]:
    try:  # one pass from text to validated model (pydantic-core's own JSON parser)
        message = StreamMessage.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise MalformedRequest(f"the message is not JSON: {first['msg']}") from None
        where = ".".join(map(str, first["loc"])) or "message"
        raise BadInput(f"{where}: {first['msg']}") from None
    return message, message.id


async def _serve(websocket: WebSocket, engine: Engine, session_id: str, owner: str | None) -> None:
    """One message at a time: read, step, reply. A client that sends faster than the server
    steps is held back by TCP (the server buffers a bounded number of frames). A connection
    that sends nothing for `limits.ws_idle_timeout_s` is closed: idle sockets cost memory."""
    idle_s = engine.settings.limits.ws_idle_timeout_s
    while True:
        try:
            async with asyncio.timeout(idle_s):  # cheaper than wait_for: no extra task
                message = await websocket.receive()
        except TimeoutError:
            await websocket.close(1001, f"idle for {idle_s:g} s: reconnect to continue")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.close(1003, "send each step as a JSON text frame")
            return
        message_id = None
        try:
            request, message_id = _parse(text)
            result = await engine.step(session_id, owner, steps_array(request.inputs), request.step)
        except SeqServeError as error:
            await websocket.send_text(_error_frame(error, message_id))
            if (code := _close_code(error)) is not None:
                await websocket.close(code, error.detail[:120])
                return
            continue
        reply = {"outputs": result.outputs, "step": result.step, "replayed": result.replayed}
        if message_id is not None:
            reply["id"] = message_id
        await websocket.send_text(orjson.dumps(reply, option=orjson.OPT_SERIALIZE_NUMPY).decode())


@router.websocket("/v1/sessions/{session_id}/stream")
async def step_stream(websocket: WebSocket, session_id: str) -> None:
    """Messages `{"inputs": [[..]], "step"?, "id"?}` in, `{"outputs", "step", "replayed"}` out,
    in order; a bad message gets `{"error": problem}` and the connection stays open. The
    handshake answer's `seqserve-replay-depth` header says how many applied requests back a
    resent message is still answered from its stored answer."""
    ctx = app_context(websocket.app)
    engine = ctx.engine
    headers = websocket.scope["headers"]
    # how many requests back a retry is answered: a client may keep that many in flight
    depth = str(engine.settings.sessions.replay_depth).encode()
    await websocket.accept(websocket_protocol(headers), [(b"seqserve-replay-depth", depth)])
    try:
        owner = ctx.keys.owner(websocket_key(headers))
        await engine.get_session(session_id, owner)
    except SeqServeError as error:
        await websocket.send_text(_error_frame(error, None))
        await websocket.close(_close_code(error) or 1008, error.detail[:120])
        return
    try:
        await _serve(websocket, engine, session_id, owner)
    except WebSocketDisconnect:
        return  # steps already applied stay applied; a retry with its step index replays


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return (
        head.encode() + b"data: " + orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n\n"
    )


@router.get(
    "/v1/sessions/{session_id}/forecast/stream",
    summary="Forecast N steps ahead as Server-Sent Events, one event per step",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def forecast_stream(
    session_id: str,
    horizon: Annotated[int, Query(ge=1, description="Steps ahead to forecast.")],
    engine: EngineDep,
    owner: OwnerDep,
    caller: CallerDep,
) -> StreamingResponse:
    step, rows = await engine.forecast_stream(session_id, owner, horizon, caller)

    async def events() -> AsyncIterator[bytes]:
        k = 0
        async for row in rows:
            yield _event("forecast", {"index": k, "forecast": row}, k)
            k += 1
        yield _event("end", {"horizon": horizon, "step": step})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
