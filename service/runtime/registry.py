"""The model repository: `<name>/<version>/` folders, checked and loaded at start-up and
loaded or unloaded while serving (every change swaps whole dicts: a reader never sees half)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqserve.service.errors import ModelLoadError, NotFound, Unavailable, VersionUnloaded
from seqserve.service.runtime.layout import Layout
from seqserve.service.runtime.manifest import Manifest
from seqserve.service.runtime.onnx_model import OnnxModel
from seqserve.service.runtime.transform import Transform
from seqserve.service.settings import OrtSettings

log = logging.getLogger("seqserve.registry")

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"
UNLOADED = "unloaded"
NOT_LOADED = "not loaded"
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LoadedModel:
    runtime: OnnxModel
    transform: Transform
    layout: Layout

    @property
    def manifest(self) -> Manifest:
        return self.runtime.manifest

    @property
    def state_names(self) -> list[str]:
        return [p.input for p in self.manifest.signature.state]

    @classmethod
    def load(cls, directory: Path, threads: int, ort: OrtSettings | None = None) -> LoadedModel:
        runtime = OnnxModel.load(directory, threads, ort)
        m = runtime.manifest
        layout = Layout(tuple(runtime.state_shapes), m.n_features, m.n_outputs)
        return cls(runtime, Transform(m), layout)


@dataclass(frozen=True)
class VersionState:
    """One version's place in the index: READY, LOADING or UNAVAILABLE (and why)."""

    name: str
    version: str
    state: str
    reason: str = ""

    def view(self) -> dict[str, Any]:
        doc = {"name": self.name, "version": self.version, "state": self.state}
        return {**doc, "reason": self.reason} if self.reason else doc


@dataclass(frozen=True)
class Attempt:
    """What a load prepared off the event loop, for `Registry.apply` to publish."""

    name: str
    loaded: dict[str, LoadedModel]
    failed: dict[str, tuple[str, Fingerprint]]


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _fingerprint(directory: Path) -> Fingerprint:
    """Sizes and times of a version's files: a folder still being copied changes it."""
    try:
        stats = [(p.name, p.stat()) for p in directory.iterdir() if p.is_file()]
    except OSError:
        return ()
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))


class Registry:
    def __init__(
        self,
        models: dict[str, dict[str, LoadedModel]],
        root: Path,
        threads: int = 1,
        defaults: dict[str, str] | None = None,
        ort: OrtSettings | None = None,
    ) -> None:
        self._models = models  # READY versions; replaced whole, never changed in place
        self._root = root
        self._threads = threads
        self._ort = ort
        self._defaults = dict(defaults or {})
        self._states: dict[tuple[str, str], VersionState] = {}  # versions not READY: why
        self._failed: dict[tuple[str, str], Fingerprint] = {}

    @classmethod
    def scan(
        cls,
        root: Path,
        threads: int = 1,
        defaults: dict[str, str] | None = None,
        ort: OrtSettings | None = None,
    ) -> Registry:
        """Load every version; any that fails its checks stops the start-up."""
        models: dict[str, dict[str, LoadedModel]] = {}
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
                if not _is_version(version_dir.name):
                    continue
                models.setdefault(model_dir.name, {})[version_dir.name] = LoadedModel.load(
                    version_dir, threads, ort
                )
        if not models:
            raise ModelLoadError(f"model repository {root} holds no <model>/<version>/ folders")
        return cls(models, root, threads, defaults, ort)

    # -- serving: READY versions only ------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        return sorted(self._versions(name), key=int)

    def latest(self, name: str) -> str:
        """The version new sessions get: the pinned default when READY, else the newest."""
        versions = self.versions(name)
        pinned = self._defaults.get(name)
        return pinned if pinned in versions else versions[-1]

    def _versions(self, name: str) -> dict[str, LoadedModel]:
        versions = self._models.get(name)
        if versions is None:
            raise NotFound(f"no model {name!r} is loaded", available=self.names())
        return versions

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self._versions(name)
        if version is None:
            version = self.latest(name)
        found = versions.get(version)
        if found is None:
            raise NotFound(
                f"model {name!r} has no version {version!r} loaded",
                available=self.versions(name),
            )
        return found

    def for_session(self, name: str, version: str, retry_after_s: int) -> LoadedModel:
        """A live session's version: 410 once unloaded here, 503 while it is in the folder
        but not (yet) loaded on this replica; never another version."""
        found = self._models.get(name, {}).get(version)
        if found is not None:
            return found
        state = self._states.get((name, version))
        if state is not None and state.reason == UNLOADED:
            raise VersionUnloaded(
                f"model {name} version {version} was unloaded", model=name, version=version
            )
        if (self._root / name / version).is_dir():
            raise Unavailable(
                f"model {name} version {version} is not loaded on this server yet",
                retry_after_s,
                model=name,
                version=version,
            )
        raise VersionUnloaded(
            f"model {name} version {version} is no longer served", model=name, version=version
        )

    def all(self) -> list[LoadedModel]:
        return [m for versions in self._models.values() for m in versions.values()]

    # -- the repository folder -------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Every model in the folder or loaded (a folder may have gone since)."""
        try:
            on_disk = {p.name for p in self._root.iterdir() if p.is_dir()}
        except OSError:
            on_disk = set()
        return sorted(on_disk | set(self._models))

    def on_disk(self, name: str) -> list[str]:
        if name not in self.model_names():  # never a path built from an unknown name
            return []
        folder = self._root / name
        try:
            found = [p.name for p in folder.iterdir() if p.is_dir() and _is_version(p.name)]
        except OSError:
            return []
        return sorted(found, key=int)

    def index(self, name: str | None = None) -> list[VersionState]:
        """Every version of every model (or of `name`), loaded or not, in version order."""
        out = []
        for model in [name] if name is not None else self.model_names():
            ready = self._models.get(model, {})
            known = {v for n, v in self._states if n == model}
            for version in sorted(set(self.on_disk(model)) | set(ready) | known, key=int):
                if version in ready:
                    out.append(VersionState(model, version, READY))
                else:
                    state = self._states.get((model, version))
                    out.append(state or VersionState(model, version, UNAVAILABLE, NOT_LOADED))
        return out

    # -- changes: `prepare` runs off the event loop, the rest on it --------------------------

    def pending(self, name: str, polling: bool = False) -> list[str]:
        """Versions in the folder a load should try: all not READY; when polling, only those
        never tried, or whose files changed since they failed, and never an unloaded one."""
        ready = self._models.get(name, {})
        wanted = []
        for version in self.on_disk(name):
            key = (name, version)
            if version in ready:
                continue
            if polling:
                state = self._states.get(key)
                if state is not None and state.reason == UNLOADED:
                    continue
                failed = self._failed.get(key)
                if failed is not None and failed == _fingerprint(self._root / name / version):
                    continue
            wanted.append(version)
        return wanted

    def mark_loading(self, name: str, versions: list[str]) -> None:
        states = dict(self._states)
        for version in versions:
            states[(name, version)] = VersionState(name, version, LOADING)
        self._states = states

    def prepare(self, name: str, versions: list[str]) -> Attempt:
        """Load and verify (hash, signature) `versions`: blocking, for a worker thread."""
        loaded: dict[str, LoadedModel] = {}
        failed: dict[str, tuple[str, Fingerprint]] = {}
        for version in versions:
            directory = self._root / name / version
            fingerprint = _fingerprint(directory)
            try:
                loaded[version] = LoadedModel.load(directory, self._threads, self._ort)
            except ModelLoadError as exc:
                failed[version] = (str(exc), fingerprint)
            except Exception:  # the reason stays in the logs, the index says where to look
                log.exception("loading %s/%s failed", name, version)
                failed[version] = ("loading failed unexpectedly: see the server log", fingerprint)
        return Attempt(name, loaded, failed)

    def apply(self, attempt: Attempt) -> list[VersionState]:
        """Publish a load: new versions become READY at once, failures UNAVAILABLE with why."""
        name = attempt.name
        models = dict(self._models)
        models[name] = {**models.get(name, {}), **attempt.loaded}
        if not models[name]:
            del models[name]
        states, failed = dict(self._states), dict(self._failed)
        for version in attempt.loaded:
            states.pop((name, version), None)
            failed.pop((name, version), None)
        for version, (reason, fingerprint) in attempt.failed.items():
            states[(name, version)] = VersionState(name, version, UNAVAILABLE, reason)
            failed[(name, version)] = fingerprint
        self._states, self._failed, self._models = states, failed, models
        return self.index(name)

    def remove(self, name: str, version: str | None = None) -> list[LoadedModel]:
        """Unload `version` (or every version) of `name`; the unloaded versions."""
        current = self._models.get(name, {})
        gone = [version] if version is not None else list(current)
        removed = [current[v] for v in gone if v in current]
        models = dict(self._models)
        models[name] = {v: m for v, m in current.items() if v not in gone}
        if not models[name]:
            del models[name]
        states = dict(self._states)
        for v in gone:
            states[(name, v)] = VersionState(name, v, UNAVAILABLE, UNLOADED)
        self._states, self._models = states, models
        return removed
