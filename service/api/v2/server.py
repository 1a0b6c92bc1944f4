"""V2 server metadata, health, and model metadata/readiness/configuration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from seqserve.service.api.deps import ContextDep, EngineDep, OwnerDep
from seqserve.service.api.health import readiness
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.v2.errors import error_response
from seqserve.service.api.v2.views import config, metadata, resolve
from seqserve.service.engine import Engine
from starlette.responses import Response

router = APIRouter(tags=["v2"])

# only what is really implemented (no shared memory, no tracing)
EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "model_repository",
    "sequence",
    "sequence(string_id)",
    "sequence_step",  # seqserve's: exactly-once steps (docs/v2.md)
    "statistics",
]


@router.get("/v2", summary="V2 server metadata")
async def server_metadata(request: Request, owner: OwnerDep) -> FastJSON:
    return FastJSON({"name": "seqserve", "version": request.app.version, "extensions": EXTENSIONS})


@router.get("/v2/health/live", summary="V2 liveness")
async def live() -> Response:
    return Response(status_code=200)


@router.get("/v2/health/ready", summary="V2 readiness")
async def ready(ctx: ContextDep) -> Response:
    not_ready = await readiness(ctx)  # the same answer as /readyz, rendered the V2 way
    if not_ready is not None:
        return error_response(not_ready)
    return Response(status_code=200)


def repository_index_view(engine: Engine) -> list[dict[str, Any]]:
    """Every model version in the repository with its state (gRPC's RepositoryIndex; HTTP's
    is in api/v2/repository.py)."""
    return [state.view() for state in engine.registry.index()]


async def model_metadata(
    model: str, engine: EngineDep, owner: OwnerDep, version: str | None = None
) -> FastJSON:
    loaded = resolve(engine, model, version)
    versions = engine.registry.versions(model) if version is None else [loaded.manifest.version]
    return FastJSON(metadata(loaded, versions))


async def model_ready(
    model: str, engine: EngineDep, owner: OwnerDep, version: str | None = None
) -> Response:
    resolve(engine, model, version)
    return Response(status_code=200)


async def model_config(
    model: str, engine: EngineDep, owner: OwnerDep, version: str | None = None
) -> FastJSON:
    document: dict[str, Any] = config(resolve(engine, model, version), engine.settings)
    return FastJSON(document)


for suffix, endpoint, what in (
    ("", model_metadata, "metadata"),
    ("/ready", model_ready, "readiness"),
    ("/config", model_config, "configuration"),
):
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        router.add_api_route(base + suffix, endpoint, methods=["GET"], summary=f"V2 model {what}")
