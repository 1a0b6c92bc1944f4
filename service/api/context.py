"""The application context: what requests need (engine, keys, V2 statistics), typed, stored
once on `app.state` and read through `app_context` (routes: `ContextDep` in `api/deps.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqserve.service.api.keys import KeyRing
from seqserve.service.api.v2.statsbook import StatsBook
from seqserve.service.engine import Engine
from starlette.applications import Starlette


@dataclass(eq=False)
class AppContext:
    engine: Engine
    keys: KeyRing
    admin_keys: KeyRing  # who may load and unload models
    v2_stats: StatsBook = field(default_factory=StatsBook)

    @property
    def draining(self) -> bool:
        # the engine's flag is the only one: it also makes the engine refuse new sessions
        return self.engine.draining

    def begin_drain(self) -> None:
        """Readiness answers 503 and new sessions are refused; steps still run."""
        self.engine.draining = True


def install(app: Starlette, context: AppContext) -> None:
    app.state.context = context


def app_context(app: Starlette) -> AppContext:
    """The context of a started app (the lifespan installs it before the first request)."""
    context: AppContext = app.state.context
    return context


def started_context(app: Starlette) -> AppContext | None:
    """The context, or None while the lifespan has not installed it yet (a signal at start-up)."""
    context: AppContext | None = getattr(app.state, "context", None)
    return context
