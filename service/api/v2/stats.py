"""The statistics extension's endpoints: per model version, since the server started."""

from __future__ import annotations

from fastapi import APIRouter
from seqserve.service.api.context import AppContext
from seqserve.service.api.deps import ContextDep, OwnerDep
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.v2.views import resolve

router = APIRouter(tags=["v2"])


def model_stats_views(
    ctx: AppContext, model: str | None, version: str | None
) -> list[dict[str, object]]:
    """The statistics of every version (no model), a model's versions, or one version; the one
    lookup for HTTP and gRPC (an unknown model or version raises Triton's error)."""
    engine, reg = ctx.engine, ctx.engine.registry
    if model is None:
        models = [reg.get(name, v) for name in reg.names() for v in reg.versions(name)]
    elif version is None:
        resolve(engine, model, None)
        models = [reg.get(model, v) for v in reg.versions(model)]
    else:
        models = [resolve(engine, model, version)]
    registry = engine.metrics.registry
    return [ctx.v2_stats.view(m, registry) for m in models]


@router.get("/v2/models/stats", summary="V2 statistics of every model version")
async def all_stats(ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    return FastJSON({"model_stats": model_stats_views(ctx, None, None)})


@router.get("/v2/models/{model}/stats", summary="V2 statistics of a model's versions")
async def model_stats(model: str, ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    return FastJSON({"model_stats": model_stats_views(ctx, model, None)})


@router.get("/v2/models/{model}/versions/{version}/stats", summary="V2 statistics of a version")
async def version_stats(model: str, version: str, ctx: ContextDep, owner: OwnerDep) -> FastJSON:
    return FastJSON({"model_stats": model_stats_views(ctx, model, version)})
