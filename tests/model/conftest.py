"""Fixtures for the training-side tests: small random models exported to a repository."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SHIPPED_DIR = Path(__file__).parents[2] / "service" / "model_repository" / "co2" / "1"

# What `pip install -e ".[train]"` brings that these tests import (lazily, so they collect).
TRAIN_MODULES = ("torch", "statsmodels", "matplotlib", "tqdm")


@pytest.fixture(scope="session", autouse=True)  # session: before random_repo needs torch
def _train_extra() -> None:
    """Without the train extra, skip locally (service work needs no torch); fail in CI."""
    missing = [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        message = f"the model tests need the train extra ({', '.join(missing)} missing): "
        message += 'pip install -e ".[dev,train]"'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# name -> export_random_model arguments: one- and two-layer LSTMs and a two-layer GRU.
RANDOM_MODELS = {
    "lstm1": {"cell": "lstm", "n_features": 2, "hidden_size": 16, "num_layers": 1, "seed": 11},
    "lstm2": {"cell": "lstm", "n_features": 3, "hidden_size": 16, "num_layers": 2, "seed": 12},
    "gru2": {
        "cell": "gru",
        "n_features": 2,
        "hidden_size": 12,
        "num_layers": 2,
        "seed": 13,
        "n_outputs": 1,
    },
}


@pytest.fixture(scope="session")
def random_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from seqserve.model.export import export_random_model

    root = tmp_path_factory.mktemp("model-repo")
    return {name: export_random_model(root, name=name, **kw) for name, kw in RANDOM_MODELS.items()}


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped co2 model directory, for tampering."""
    import shutil

    target = tmp_path / "co2" / "1"
    shutil.copytree(SHIPPED_DIR, target)
    return target
