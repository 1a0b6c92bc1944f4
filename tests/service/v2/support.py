"""Helpers shared by the V2 tests (in-process and end-to-end)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import IN_CI


def require(module: str) -> ModuleType:
    """Import a test tool; skip without it locally, but fail under CI (env CI set)."""
    if IN_CI:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def infer_body(
    data: Any, shape: list[int], datatype: str = "FP32", name: str = "x", **params: Any
) -> dict[str, Any]:
    """A JSON-only V2 infer request body for one input."""
    body: dict[str, Any] = {
        "inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]
    }
    if params:
        body["parameters"] = params
    return body
