"""`POST /v2/models/{model}[/versions/{version}]/infer`: the V2 inference endpoint.

The body is read raw: tritonclient sends no Content-Type, and binary tensor data follows the
JSON header. Parse, call the engine once (through `execute`), shape the answer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from seqserve.service.api.deps import EngineDep, OwnerDep, caller_of
from seqserve.service.api.v2 import codec, compression, stats
from seqserve.service.api.v2.errors import V2Route
from seqserve.service.api.v2.execute import execute
from seqserve.service.api.v2.views import resolve
from seqserve.service.errors import SeqServeError
from starlette.responses import Response

router = APIRouter(route_class=V2Route, tags=["v2"])
HEADER_LENGTH = "Inference-Header-Content-Length"


async def run_infer(
    request: Request, engine: EngineDep, owner: str | None, name: str, version: str | None
) -> Response:
    started = time.perf_counter_ns()
    model = resolve(engine, name, version)
    book = stats.book(request)
    headers = request.headers
    try:
        body = await compression.inflate_body(
            await request.body(),
            headers.get("content-encoding"),
            engine.settings.limits.max_body_bytes,
        )
        req = codec.parse(body, headers.get(HEADER_LENGTH), name)
        model, outputs = await execute(
            engine, owner, model, version, req, caller_of(request, owner)
        )
    except SeqServeError:
        book.record(model, False, 0, time.perf_counter_ns() - started)
        raise
    m = model.manifest
    batch = next((t.shape[0] for t in req.inputs if t.name == m.signature.data_input.name), 0)
    book.record(model, True, batch, time.perf_counter_ns() - started)
    payload, header_length = codec.encode(m.name, m.version, req.id, outputs)
    reply = {"Content-Type": "application/json"}
    if header_length is not None:
        reply = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(header_length)}
    coding = compression.negotiate(headers.get("accept-encoding"))
    if coding is not None:
        payload = compression.deflate(payload, coding)
        reply["Content-Encoding"] = coding
    return Response(payload, headers=reply)


@router.post("/v2/models/{model}/infer", summary="V2 inference (stateless, or a sequence step)")
async def infer(model: str, request: Request, engine: EngineDep, owner: OwnerDep) -> Response:
    return await run_infer(request, engine, owner, model, None)


@router.post("/v2/models/{model}/versions/{version}/infer", summary="V2 inference on a version")
async def infer_version(
    model: str, version: str, request: Request, engine: EngineDep, owner: OwnerDep
) -> Response:
    return await run_infer(request, engine, owner, model, version)
