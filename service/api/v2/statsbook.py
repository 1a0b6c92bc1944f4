"""The statistics extension's bookkeeping: V2 infer outcomes per model version.

`success`, `fail`, `inference_count` and `last_inference` count V2 infer requests. The
execution figures (`execution_count`, `compute_infer`) come from the engine's ONNX Runtime
metrics, so they count every model run, whichever protocol or session asked for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from seqserve.service.runtime.registry import LoadedModel


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def view(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    inference_count: int = 0
    last_inference_ms: int = 0


class StatsBook:
    def __init__(self) -> None:
        self._stats: dict[tuple[str, str], ModelStats] = {}

    def record(self, model: LoadedModel, ok: bool, batch: int, elapsed_ns: int) -> None:
        m = model.manifest
        stats = self._stats.setdefault((m.name, m.version), ModelStats())
        (stats.success if ok else stats.fail).add(elapsed_ns)
        if ok:
            stats.inference_count += batch
            stats.last_inference_ms = int(time.time() * 1000)

    def view(self, model: LoadedModel, registry: CollectorRegistry) -> dict[str, object]:
        m = model.manifest
        stats = self._stats.get((m.name, m.version), ModelStats())
        labels = {"model": m.name, "version": m.version}
        runs = registry.get_sample_value("seqserve_ort_run_seconds_count", labels) or 0.0
        seconds = registry.get_sample_value("seqserve_ort_run_seconds_sum", labels) or 0.0
        zero = Duration().view()
        return {
            "name": m.name,
            "version": m.version,
            "last_inference": stats.last_inference_ms,
            "inference_count": stats.inference_count,
            "execution_count": int(runs),
            "inference_stats": {
                "success": stats.success.view(),
                "fail": stats.fail.view(),
                "queue": zero,
                "compute_input": zero,
                "compute_infer": {"count": int(runs), "ns": int(seconds * 1e9)},
                "compute_output": zero,
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "response_stats": {},
            "batch_stats": [],
            "memory_usage": [],
        }
