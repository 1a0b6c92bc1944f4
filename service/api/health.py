"""Liveness, readiness (one answer for `/readyz` and `/v2/health/ready`) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from seqserve.service.api.context import AppContext
from seqserve.service.api.deps import ContextDep, EngineDep
from seqserve.service.api.responses import FastJSON, problem_response
from seqserve.service.errors import SeqServeError, Unavailable
from starlette.responses import Response

router = APIRouter(tags=["health"])
STORE_PING_TIMEOUT_S = 2.0
RETRY_AFTER_S = 5


class Draining(Unavailable):
    title, slug = "Draining", "draining"


class NoModel(Unavailable):
    title, slug = "No model loaded", "no-model"


class StoreUnreachable(Unavailable):
    title, slug = "State store unreachable", "store-unreachable"


async def readiness(ctx: AppContext) -> SeqServeError | None:
    """Why the server should get no traffic now (an error to render), or None when ready."""
    if ctx.draining:
        return Draining("the server is shutting down", RETRY_AFTER_S)
    if not ctx.engine.registry.names():
        return NoModel("no model is loaded", RETRY_AFTER_S)
    try:
        await asyncio.wait_for(ctx.engine.store.ping(), STORE_PING_TIMEOUT_S)
    except SeqServeError as exc:  # unreachable, or refusing writes (read-only)
        return StoreUnreachable(exc.detail, RETRY_AFTER_S)
    except TimeoutError:
        return StoreUnreachable("the session store (Redis) is unreachable", RETRY_AFTER_S)
    return None


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> FastJSON:
    return FastJSON({"status": "ok"})


@router.get("/readyz", summary="Readiness: models loaded and the server accepts work")
async def readyz(ctx: ContextDep) -> Response:
    not_ready = await readiness(ctx)
    if not_ready is not None:
        return problem_response(not_ready)
    models = {m.manifest.name for m in ctx.engine.registry.all()}
    return FastJSON({"status": "ready", "models": sorted(models), "state_store": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(engine: EngineDep) -> Response:
    data = generate_latest(engine.metrics.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
