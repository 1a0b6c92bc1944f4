"""The registry's run-time changes without a server: what a session's lookup answers for a
version loaded, unloaded, or only in the folder, and what polling retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from seqserve.service.errors import Unavailable, VersionUnloaded
from seqserve.service.runtime.registry import Registry
from seqserve.service.settings import Settings

from tests.onnx_models import random_model


def _load(reg: Registry, name: str, polling: bool = False) -> None:
    reg.apply(reg.prepare(name, reg.pending(name, polling)))


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    random_model(tmp_path, name="m", version="1", seed=1)
    return Registry.scan(tmp_path)


def test_a_session_lookup_never_falls_back_to_another_version(
    reg: Registry, tmp_path: Path
) -> None:
    random_model(tmp_path, name="m", version="2", seed=2)
    with pytest.raises(Unavailable, match="version 2 is not loaded on this server yet"):
        reg.for_session("m", "2", retry_after_s=3)
    _load(reg, "m")
    assert reg.for_session("m", "2", 3).manifest.version == "2"
    assert reg.latest("m") == "2"
    assert [m.manifest.version for m in reg.remove("m", "1")] == ["1"]
    with pytest.raises(VersionUnloaded, match="model m version 1 was unloaded"):
        reg.for_session("m", "1", 3)
    with pytest.raises(VersionUnloaded, match="version 9 is no longer served"):
        reg.for_session("m", "9", 3)
    assert [(s.version, s.state, s.reason) for s in reg.index("m")] == [
        ("1", "UNAVAILABLE", "unloaded"),
        ("2", "READY", ""),
    ]


def test_polling_retries_a_failed_version_only_once_its_files_change(
    reg: Registry, tmp_path: Path
) -> None:
    folder = random_model(tmp_path, name="m", version="2", seed=2)
    good = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(good[:-1])  # a copy still under way
    _load(reg, "m", polling=True)
    [state] = [s for s in reg.index("m") if s.version == "2"]
    assert (state.state, "SHA-256" in state.reason) == ("UNAVAILABLE", True)
    assert reg.versions("m") == ["1"]  # the failure left version 1 serving
    assert reg.pending("m", polling=True) == []
    assert reg.pending("m") == ["2"]  # an explicit load always tries again
    (folder / "model.onnx").write_bytes(good)
    assert reg.pending("m", polling=True) == ["2"]
    _load(reg, "m", polling=True)
    assert reg.versions("m") == ["1", "2"]


def test_polling_never_reloads_an_unloaded_version(reg: Registry) -> None:
    reg.remove("m")
    assert reg.names() == []
    assert reg.pending("m", polling=True) == []
    _load(reg, "m")
    assert reg.versions("m") == ["1"]


def test_a_pinned_default_version_must_be_a_number(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'m' is pinned to 'latest'"):
        Settings(model_repository=tmp_path, model_default_versions={"m": "latest"})
