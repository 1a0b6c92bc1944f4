"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.api.deps import EngineDep
from service.api.responses import FastJSON, Problem, problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> FastJSON:
    return FastJSON({"status": "ok"})


@router.get("/readyz", summary="Readiness: models loaded and the server accepts work")
async def readyz(request: Request, engine: EngineDep) -> Response:
    if getattr(request.app.state, "draining", False):
        body = problem(503, "Draining", "draining", "the server is shutting down")
        return Problem(body, status_code=503, headers={"Retry-After": "5"})
    models = {m.manifest.name: m.manifest.version for m in engine.registry.all()}
    return FastJSON({"status": "ready", "models": sorted(models)})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(engine: EngineDep) -> Response:
    data = generate_latest(engine.metrics.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
