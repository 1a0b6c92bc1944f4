"""The test suite's own machinery: torch-free test models and markers by folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from seqserve.model.reference import ReferenceModel
from seqserve.model.verify import verify_model_dir

from tests.onnx_models import random_model

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("cell", "layers", "outputs"), [("lstm", 1, None), ("lstm", 2, None), ("gru", 2, 1)]
)
def test_built_models_pass_verify(
    tmp_path: Path, cell: str, layers: int, outputs: int | None
) -> None:
    """Hash, signature, native op, ONNX Runtime == NumPy reference, stepwise == whole."""
    model_dir = random_model(
        tmp_path, cell=cell, n_features=3, hidden_size=8, num_layers=layers, n_outputs=outputs
    )
    report = verify_model_dir(model_dir, times=(1, 20))
    assert max(report.max_abs_err.values()) <= 1e-5
    ref = ReferenceModel.from_onnx(model_dir / "model.onnx")
    assert (ref.cell, ref.num_layers, ref.hidden_size, ref.n_outputs) == (
        cell,
        layers,
        8,
        outputs or 3,
    )


def test_this_test_carries_its_folder_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("service") is not None
    assert request.node.get_closest_marker("e2e") is None


def test_not_e2e_selects_nothing_under_tests_e2e() -> None:
    """`-m "not e2e"` must not start real servers: no test under tests/e2e is left selected."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"]
        + ["-m", "not e2e", "tests/e2e"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout + proc.stderr
    assert "deselected" in proc.stdout
