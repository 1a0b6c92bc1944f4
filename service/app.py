"""The app factory: `create_app(settings)`; nothing is loaded at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from seqserve.service.api import health, models, openapi, pages, problems, sessions, streaming
from seqserve.service.api.context import AppContext, install, started_context
from seqserve.service.api.fastlane import FastLane
from seqserve.service.api.keys import KeyRing
from seqserve.service.api.middleware import RequestContext
from seqserve.service.api.v2.routes import router as v2_router
from seqserve.service.engine import Engine
from seqserve.service.errors import ModelLoadError
from seqserve.service.metrics import Metrics
from seqserve.service.runtime.registry import Registry
from seqserve.service.settings import Settings
from seqserve.service.state.factory import open_store
from seqserve.service.state.snapshot import restore_at_start, write_at_shutdown
from seqserve.service.tracing import build as build_tracing

log = logging.getLogger("seqserve")

DESCRIPTION = """Stateful streaming inference for recurrent sequence models on ONNX Runtime.

A session keeps a stream's recurrent state on the server: send one or a few timesteps per
request. Errors are RFC 9457 problem details. With API keys configured, send `X-API-Key`.
"""


def load_models(settings: Settings) -> Registry:
    """Every version in the model repository, checked; ModelLoadError names the first bad one."""
    return Registry.scan(
        settings.model_repository,
        settings.ort_threads,
        settings.model_default_versions,
        settings.ort,
    )


def build_engine(settings: Settings, metrics: Metrics, models: Registry | None = None) -> Engine:
    registry = models if models is not None else load_models(settings)
    return Engine(settings, registry, open_store(settings, metrics), metrics)


def begin_drain(app: FastAPI) -> None:
    """SIGTERM: readiness answers 503 and new sessions are refused; steps still run."""
    context = started_context(app)
    if context is not None:  # still starting: the drain hook applies it once started
        context.begin_drain()


async def _sweep(engine: Engine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await engine.store.sweep()
        except Exception:  # keep sweeping whatever one pass hit
            log.exception("session sweep failed")


def create_app(
    settings: Settings, registry: CollectorRegistry | None = None, loaded: Registry | None = None
) -> FastAPI:
    """The app; `loaded` is the model repository when the caller has loaded it already."""
    metrics = Metrics(registry or CollectorRegistry())
    tracing = build_tracing(settings.tracing)  # None when off: no opentelemetry import

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            engine = build_engine(settings, metrics, loaded)
        except ModelLoadError as exc:
            log.error("cannot load the model repository: %s", exc)
            raise
        engine.tracing = tracing
        await restore_at_start(settings.snapshot_path, engine.store, engine.registry)
        context = AppContext(engine, keys, admin_keys)
        install(app, context)
        sweeper = asyncio.create_task(_sweep(engine, settings.sessions.sweep_interval_s))
        watcher = None
        if settings.model_control_mode == "poll":
            watcher = asyncio.create_task(engine.repository.watch())
        grpc_server = None
        if settings.grpc_port is not None:  # imported only then: grpcio is an extra
            from seqserve.service.api.grpc import server as grpc_front

            grpc_server = await grpc_front.start(settings, context, app.version)
        log.info("ready", extra={"models": engine.registry.names()})
        try:
            yield
        finally:
            context.begin_drain()
            if grpc_server is not None:
                await grpc_front.stop(grpc_server, settings.shutdown_timeout_s)
            for task in (sweeper, watcher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await engine.stop_batching()
            await write_at_shutdown(settings.snapshot_path, engine.store, engine.registry)
            await engine.store.close()
            engine.close()
            if tracing is not None:
                tracing.close()

    app = FastAPI(
        title="seqserve",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api/pages.py serves /docs and /redoc from vendored assets
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,  # stable ids for generated clients
        # FastAPI's built-in OpenTelemetry hooks cost several µs a request even when no
        # provider is configured; seqserve exports Prometheus metrics instead
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    keys = KeyRing(settings.api_keys())
    admin_keys = KeyRing(settings.admin_api_keys())
    problems.install(app)
    # hot paths first: route matching walks this list
    for router in (sessions.router, v2_router, health.router, models.router, streaming.router):
        app.include_router(router)
    pages.install(app)
    openapi.install(app)
    app.add_middleware(FastLane)  # innermost: CORS, ids, limits and metrics still apply
    if settings.security.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.security.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        max_body_bytes=settings.limits.max_body_bytes,
        body_timeout_s=settings.limits.body_timeout_s,
        tracing=tracing,
    )
    return app
