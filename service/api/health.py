"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from seqserve.service.api.deps import EngineDep
from seqserve.service.api.responses import FastJSON, Problem, problem
from seqserve.service.errors import SeqServeError
from starlette.responses import Response

router = APIRouter(tags=["health"])
STORE_PING_TIMEOUT_S = 2.0


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> FastJSON:
    return FastJSON({"status": "ok"})


@router.get("/readyz", summary="Readiness: models loaded and the server accepts work")
async def readyz(request: Request, engine: EngineDep) -> Response:
    if getattr(request.app.state, "draining", False):
        body = problem(503, "Draining", "draining", "the server is shutting down")
        return Problem(body, status_code=503, headers={"Retry-After": "5"})
    try:
        await asyncio.wait_for(engine.store.ping(), STORE_PING_TIMEOUT_S)
    except SeqServeError as exc:  # unreachable, or refusing writes (read-only)
        body = problem(503, "State store unavailable", "store-unreachable", exc.detail)
        return Problem(body, status_code=503, headers={"Retry-After": "5"})
    except TimeoutError:
        detail = "the session store (Redis) is unreachable"
        body = problem(503, "State store unreachable", "store-unreachable", detail)
        return Problem(body, status_code=503, headers={"Retry-After": "5"})
    models = {m.manifest.name: m.manifest.version for m in engine.registry.all()}
    return FastJSON({"status": "ready", "models": sorted(models), "state_store": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(engine: EngineDep) -> Response:
    data = generate_latest(engine.metrics.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
