"""The model repository: every `<name>/<version>/` folder, loaded and checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqserve.service.errors import ModelLoadError, NotFound
from seqserve.service.runtime.layout import Layout
from seqserve.service.runtime.manifest import Manifest
from seqserve.service.runtime.onnx_model import OnnxModel
from seqserve.service.runtime.transform import Transform
from seqserve.service.settings import OrtSettings


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


class Registry:
    def __init__(self, models: dict[str, dict[str, LoadedModel]]) -> None:
        self._models = models

    @classmethod
    def scan(cls, root: Path, threads: int = 1, ort: OrtSettings | None = None) -> Registry:
        models: dict[str, dict[str, LoadedModel]] = {}
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
                if not (version_dir.name.isascii() and version_dir.name.isdigit()):
                    continue
                models.setdefault(model_dir.name, {})[version_dir.name] = LoadedModel.load(
                    version_dir, threads, ort
                )
        if not models:
            raise ModelLoadError(f"model repository {root} holds no <model>/<version>/ folders")
        return cls(models)

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        return sorted(self._versions(name), key=int)

    def latest(self, name: str) -> str:
        return self.versions(name)[-1]

    def _versions(self, name: str) -> dict[str, LoadedModel]:
        versions = self._models.get(name)
        if versions is None:
            raise NotFound(f"no model {name!r}", available=self.names())
        return versions

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self._versions(name)
        if version is None:
            version = self.latest(name)
        found = versions.get(version)
        if found is None:
            raise NotFound(
                f"model {name!r} has no version {version!r}", available=self.versions(name)
            )
        return found

    def all(self) -> list[LoadedModel]:
        return [m for versions in self._models.values() for m in versions.values()]
