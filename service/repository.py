"""Loading and unloading model versions while serving: one change at a time, verified off the
event loop, published at once; an unloaded version's steps in flight finish first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from seqserve.service.errors import Forbidden, LoadRefused, NotFound
from seqserve.service.runtime.registry import Attempt, LoadedModel, Registry, VersionState
from seqserve.service.settings import Settings

log = logging.getLogger("seqserve.repository")

Retire = Callable[[list[LoadedModel]], Awaitable[None]]


class RepositoryControl:
    """Triton's model control: `explicit` (this API), `none` (API off), `poll` (API + watch)."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        retire: Retire,
        on_loaded: Callable[[LoadedModel], None],
    ) -> None:
        self.registry = registry
        self.mode = settings.model_control_mode
        self.poll_interval_s = settings.model_poll_interval_s
        self._retire = retire
        self._on_loaded = on_loaded
        self._lock = asyncio.Lock()  # loads, unloads and polls never interleave

    def _allowed(self, name: str) -> None:
        if self.mode == "none":
            raise Forbidden(
                "model control is off (SEQSERVE_MODEL_CONTROL_MODE=none): the repository "
                "cannot be changed while the server runs"
            )
        if name not in self.registry.model_names():
            raise NotFound(f"no model {name!r} in the repository")

    async def load(self, name: str) -> list[VersionState]:
        """Load every version of `name` in the folder that is not READY; a version that fails
        its checks is refused (LoadRefused) and the READY ones keep serving."""
        self._allowed(name)
        async with self._lock:
            refused = await self._load(name, self.registry.pending(name))
        states = self.registry.index(name)
        if refused:
            why = "; ".join(f"version {s.version}: {s.reason}" for s in refused)
            raise LoadRefused(
                f"model {name} was not fully loaded: {why}",
                model=name,
                versions=[s.view() for s in states],
            )
        return states

    async def _load(self, name: str, versions: list[str]) -> list[VersionState]:
        if not versions:
            return []
        self.registry.mark_loading(name, versions)
        try:
            attempt = await asyncio.to_thread(self.registry.prepare, name, versions)
        except BaseException:  # cancelled (e.g. shutdown): no version may stay LOADING
            why = ("the load was interrupted", ())
            self.registry.apply(Attempt(name, {}, dict.fromkeys(versions, why)))
            raise
        for model in attempt.loaded.values():
            self._on_loaded(model)
        states = self.registry.apply(attempt)
        for version in attempt.loaded:
            log.info("loaded model %s version %s", name, version)
        refused = [s for s in states if s.version in attempt.failed]
        for state in refused:
            log.warning("refused model %s version %s: %s", name, state.version, state.reason)
        return refused

    async def unload(self, name: str, version: str | None = None) -> list[VersionState]:
        """Unload `version` (else every version): new steps of its sessions answer 410 at
        once; the steps already queued or running finish first."""
        self._allowed(name)
        if version is not None and version not in {s.version for s in self.registry.index(name)}:
            raise NotFound(f"model {name!r} has no version {version!r}")
        async with self._lock:
            removed = self.registry.remove(name, version)
            await self._retire(removed)
        for model in removed:
            log.info("unloaded model %s version %s", name, model.manifest.version)
        return self.registry.index(name)

    async def poll(self) -> None:
        """Load what appeared in the folder (and retry failures whose files changed)."""
        async with self._lock:
            for name in self.registry.model_names():
                await self._load(name, self.registry.pending(name, polling=True))

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.poll()
            except Exception:  # keep watching whatever one pass hit
                log.exception("polling the model repository failed")
