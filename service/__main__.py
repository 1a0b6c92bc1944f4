"""`python -m seqserve.service` / `seqserve serve`: run the server with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError
from seqserve.service import logs, settings_errors
from seqserve.service.app import begin_drain, create_app, load_models
from seqserve.service.connections import guarded_protocol
from seqserve.service.drain import DrainingServer
from seqserve.service.errors import ModelLoadError
from seqserve.service.runtime.registry import Registry
from seqserve.service.settings import Settings
from starlette.types import ASGIApp


def uvicorn_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """uvicorn's settings for the app: the single server's and each worker's."""
    limits = settings.limits
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # seqserve.access logs each request with its request id
        log_config=None,  # keep the handlers logs.configure installed
        loop="uvloop",
        # httptools, with a deadline and a size bound on request heads
        http=guarded_protocol(limits.head_timeout_s, limits.max_head_bytes),
        ws_max_size=limits.max_body_bytes,  # a bigger frame closes with 1009
        ws_max_queue=8,  # frames buffered per connection before TCP pushes back
        ws_ping_interval=limits.ws_ping_interval_s,  # a peer gone silently is closed
        ws_ping_timeout=limits.ws_ping_interval_s,
        limit_concurrency=limits.max_connections,  # beyond it: 503 and the connection closes
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.shutdown_timeout_s,  # type: ignore[arg-type]
    )


def load_or_explain(settings: Settings) -> Registry | None:
    """The models, or None after printing why not: a broken model is an operator's message
    before uvicorn starts, not a traceback."""
    try:
        return load_models(settings)
    except ModelLoadError as exc:
        print(
            settings_errors.describe_repository(settings.model_repository, str(exc)),
            file=sys.stderr,
        )
        return None


def configure_or_explain() -> Settings | None:
    """The settings, logging set up by them, or None after printing why they are refused."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(settings_errors.describe(exc), file=sys.stderr)
        return None
    logs.configure(settings.log_level, settings.log_json)
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = configure_or_explain()
    if settings is None:
        return 2
    if settings.workers > 1:  # a supervisor over N worker processes (service/worker.py)
        from seqserve.service.supervisor import supervise

        return supervise(settings)
    models = load_or_explain(settings)
    if models is None:
        return 2
    app = create_app(settings, loaded=models)
    config = uvicorn_config(app, settings)
    server = DrainingServer(config, lambda: begin_drain(app), settings.drain_delay_s)
    server.run()
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
