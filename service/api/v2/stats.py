"""The statistics extension's endpoints: per model version, since the server started."""

from __future__ import annotations

from fastapi import APIRouter
from seqserve.service.api.deps import ContextDep, OwnerDep
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.v2.views import resolve

router = APIRouter(tags=["v2"])


@router.get("/v2/models/stats", summary="V2 statistics of every model version")
async def all_stats(ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    reg = ctx.engine.registry
    models = [reg.get(name, v) for name in reg.names() for v in reg.versions(name)]
    registry = ctx.engine.metrics.registry
    return FastJSON({"model_stats": [ctx.v2_stats.view(m, registry) for m in models]})


@router.get("/v2/models/{model}/stats", summary="V2 statistics of a model's versions")
async def model_stats(model: str, ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    engine = ctx.engine
    resolve(engine, model, None)
    models = [engine.registry.get(model, v) for v in engine.registry.versions(model)]
    registry = engine.metrics.registry
    return FastJSON({"model_stats": [ctx.v2_stats.view(m, registry) for m in models]})


@router.get("/v2/models/{model}/versions/{version}/stats", summary="V2 statistics of a version")
async def version_stats(model: str, version: str, ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    loaded = resolve(ctx.engine, model, version)
    view = ctx.v2_stats.view(loaded, ctx.engine.metrics.registry)
    return FastJSON({"model_stats": [view]})
