"""Triton's model repository extension: the index, and loading/unloading models while serving."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from seqserve.service.api.deps import AdminDep, EngineDep, ReaderDep
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.api.v2.server import repository_index_view
from seqserve.service.runtime.registry import READY
from starlette.responses import Response

router = APIRouter(tags=["v2"])

# Triton's load parameters that carry a configuration or files in the request: seqserve loads
# only what is in the repository folder (verified against its manifest)
_INLINE = ("config", "file:")


async def _options(request: Request, what: str) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        options = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise V2Error(f"failed to parse the {what} request") from None
    if not isinstance(options, dict):
        raise V2Error("the request body must be a JSON object")
    return options


async def _parameters(request: Request, what: str) -> dict[str, Any]:
    parameters = (await _options(request, what)).get("parameters", {})
    if not isinstance(parameters, dict):
        raise V2Error("'parameters' must be a JSON object")
    return parameters


@router.post("/v2/repository/index", summary="V2 repository index: every model version's state")
async def repository_index(request: Request, engine: EngineDep, reader: ReaderDep) -> FastJSON:
    ready = (await _options(request, "repository index")).get("ready", False)
    if not isinstance(ready, bool):
        raise V2Error("Unable to parse 'ready'")
    index = repository_index_view(engine)
    return FastJSON([s for s in index if s["state"] == READY or not ready])


@router.post("/v2/repository/models/{model}/load", summary="V2 load (or reload) a model")
async def load(model: str, request: Request, engine: EngineDep, admin: AdminDep) -> Response:
    """Loads every version in the repository folder not yet READY, each verified first."""
    for key in await _parameters(request, "model load"):
        if key.startswith(_INLINE):
            raise V2Error(
                f"load parameter '{key[:64]}' is not supported: seqserve loads models "
                "from its repository folder only"
            )
    await engine.repository.load(model)
    return Response(status_code=200)


@router.post("/v2/repository/models/{model}/unload", summary="V2 unload every version of a model")
async def unload(model: str, request: Request, engine: EngineDep, admin: AdminDep) -> Response:
    await _parameters(
        request, "model unload"
    )  # unload_dependents: there are no ensembles to follow
    await engine.repository.unload(model)
    return Response(status_code=200)
