"""ONNX Runtime session options and execution providers from the `ort` settings, with the CPU
provider as the fallback wherever the requested one is missing."""

from __future__ import annotations

import logging

import onnxruntime as ort
from seqserve.service.settings import OrtSettings

log = logging.getLogger("seqserve.runtime")

CPU = "CPUExecutionProvider"
_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(settings: OrtSettings, intra_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _LEVELS[settings.graph_optimization_level]
    options.enable_cpu_mem_arena = settings.cpu_mem_arena
    options.log_severity_level = 3
    return options


def providers(settings: OrtSettings) -> list[tuple[str, dict[str, str]]]:
    """The requested providers this build has (a missing one is logged once per load), with
    their options, and CPU last."""
    available = set(ort.get_available_providers())
    chosen: list[tuple[str, dict[str, str]]] = []
    for name in settings.providers:
        if name == CPU:
            continue
        if name not in available:
            log.warning(
                "ONNX Runtime provider %s is not available here (%s): falling back to %s",
                name,
                ", ".join(sorted(available)),
                CPU,
            )
            continue
        chosen.append((name, settings.provider_options.get(name, {})))
    chosen.append((CPU, settings.provider_options.get(CPU, {})))
    return chosen


def check_in_use(session: ort.InferenceSession, wanted: str, where: str) -> str:
    """The provider running the session; warns when ORT fell back on its own (e.g. onnxruntime-gpu
    installed but no CUDA driver or libraries)."""
    in_use: str = session.get_providers()[0]
    if in_use != wanted:
        log.warning("%s: asked for %s, ONNX Runtime runs it on %s", where, wanted, in_use)
    return in_use
