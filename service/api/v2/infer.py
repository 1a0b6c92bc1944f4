"""`POST /v2/models/{model}[/versions/{version}]/infer`: the V2 inference endpoint.

The body is read raw: tritonclient sends no Content-Type, and binary tensor data follows the
JSON header. Parse, call the engine once (through `dataplane.infer`, shared with gRPC), shape
the answer. `infer` is the one handler; the fast lane (`api/fastlane.py`) calls it straight
from ASGI, and the routes below exist for the OpenAPI document only.
"""

from __future__ import annotations

from fastapi import APIRouter
from seqserve.service.api.context import AppContext, app_context
from seqserve.service.api.deps import caller_of
from seqserve.service.api.keys import presented_key
from seqserve.service.api.v2 import codec, compression, dataplane
from seqserve.service.api.v2.errors import error_response
from seqserve.service.errors import SeqServeError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

router = APIRouter(tags=["v2"])
HEADER_LENGTH = "Inference-Header-Content-Length"
FAST_LANE_ONLY = "answered by the fast lane (api/fastlane.py); this route is documentation"


async def infer(
    scope: Scope, receive: Receive, send: Send, name: str, version: str | None = None
) -> None:
    """One V2 infer request, from ASGI to the answer (errors as `{"error": ...}`)."""
    ctx = app_context(scope["app"])
    request = Request(scope, receive)
    response: Response
    try:
        owner = ctx.keys.owner(presented_key(scope["headers"]))
        response = await _run(ctx, request, owner, name, version)
    except SeqServeError as error:
        response = error_response(error)
    await response(scope, receive, send)


async def _run(
    ctx: AppContext, request: Request, owner: str | None, name: str, version: str | None
) -> Response:
    headers = request.headers

    async def read() -> codec.InferRequest:
        body = await compression.inflate_body(
            await request.body(),
            headers.get("content-encoding"),
            ctx.engine.settings.limits.max_body_bytes,
        )
        return codec.parse(body, headers.get(HEADER_LENGTH), name)

    answer = await dataplane.infer(ctx, owner, caller_of(request, owner), name, version, read)
    m, req, outputs = answer.model.manifest, answer.request, answer.outputs
    payload, header_length = codec.encode(m.name, m.version, req.id, outputs, answer.parameters)
    reply = {"Content-Type": "application/json"}
    if header_length is not None:
        reply = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(header_length)}
    coding = compression.negotiate(headers.get("accept-encoding"))
    if coding is not None:
        payload = compression.deflate(payload, coding)
        reply["Content-Encoding"] = coding
    return Response(payload, headers=reply)


@router.post(
    "/v2/models/{model}/infer",
    name="infer",
    summary="V2 inference (stateless, or a sequence step)",
)
async def infer_documented(model: str) -> Response:
    raise NotImplementedError(FAST_LANE_ONLY)


@router.post(
    "/v2/models/{model}/versions/{version}/infer",
    name="infer_version",
    summary="V2 inference on a version",
)
async def infer_version_documented(model: str, version: str) -> Response:
    raise NotImplementedError(FAST_LANE_ONLY)
