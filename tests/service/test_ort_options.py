"""ONNX Runtime options from settings: providers with CPU fallback (reported by the model view)
and session options that reach the real ORT session."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.settings import OrtSettings

from tests.service.conftest import MakeClient

CUDA = "CUDAExecutionProvider"


def test_a_missing_provider_falls_back_to_cpu_with_a_warning(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="seqserve.runtime"):
        client = make_client(ort={"providers": [CUDA, "CPUExecutionProvider"]})
    provider = client.get("/v1/models/diffed").json()["provider"]
    if CUDA in ort.get_available_providers():  # a CUDA build: it runs there (or says why not)
        assert provider == CUDA or any(CUDA in r.message for r in caplog.records)
    else:
        assert provider == "CPUExecutionProvider"
        assert any(CUDA in r.message and "falling back" in r.message for r in caplog.records)


def test_session_options_reach_onnx_runtime(repo: Path) -> None:
    options = OrtSettings(graph_optimization_level="basic", inter_op_threads=2, cpu_mem_arena=False)
    model = LoadedModel.load(repo / "multi" / "1", threads=1, ort=options)
    used = model.runtime._session.get_session_options()
    assert used.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert used.inter_op_num_threads == 2
    assert used.enable_cpu_mem_arena is False
    default = LoadedModel.load(repo / "multi" / "1", threads=1)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    states = [
        np.zeros((layers, 2, size), np.float32) for layers, size in default.layout.tensor_shapes
    ]
    for got, want in zip(
        model.runtime.run(x, states)[0], default.runtime.run(x, states)[0], strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_an_unknown_optimization_level_is_refused() -> None:
    with pytest.raises(ValueError, match="graph_optimization_level"):
        OrtSettings(graph_optimization_level="max")  # type: ignore[arg-type]
