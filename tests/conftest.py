"""Shared fixtures (a repository of real ONNX models, built without torch) and folder markers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from seqserve.service.runtime.manifest import Feature, Output

from tests.onnx_models import random_model

TESTS = Path(__file__).parent
SHIPPED = TESTS.parent / "service" / "model_repository"
IN_CI = bool(os.environ.get("CI"))
FOLDER_MARKERS = ("model", "service", "e2e", "client")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: it must see these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its folder: tests/model -> model, tests/service -> service, ...
    (a `pytestmark` in a conftest.py marks nothing, so this is how folders get markers)."""
    for item in items:
        if item.path.is_relative_to(TESTS):
            folder = item.path.relative_to(TESTS).parts[0]
            if folder in FOLDER_MARKERS:
                item.add_marker(folder)


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """co2-like differenced models (v1, v2), a 2-layer 3-feature LSTM and a GRU."""
    root = tmp_path_factory.mktemp("repo")
    co2 = [Feature(name="co2", unit="ppm", difference=True, mean=0.03, std=0.5)]
    for version, seed in (("1", 1), ("2", 2)):
        random_model(
            root,
            name="diffed",
            version=version,
            seed=seed,
            hidden_size=16,
            features=co2,
            outputs=[Output(name="co2_next", feature=0)],
        )
    random_model(
        root,
        name="multi",
        n_features=3,
        hidden_size=8,
        num_layers=2,
        seed=3,
        features=[Feature(name=f"s{k}", mean=k, std=1 + k) for k in range(3)],
    )
    random_model(root, name="gru", cell="gru", n_features=2, n_outputs=1, seed=4)
    return root


@pytest.fixture(scope="session")
def shipped_repo() -> Path:
    if not (SHIPPED / "co2" / "1" / "model.onnx").is_file():
        pytest.fail("the shipped default model is missing from service/model_repository")
    return SHIPPED


@pytest.fixture
def repo_copy(repo: Path, tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "repo"
    shutil.copytree(repo, target)
    return target
