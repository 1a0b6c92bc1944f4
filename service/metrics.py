"""Prometheus metrics on an injected registry (each app and each test gets its own)."""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
_WAIT_BUCKETS = (1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.05, 0.25, 1)
_ORT_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin series for each counter
        self.registry = registry
        self.request_seconds = Histogram(
            "seqserve_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ort_seconds = Histogram(
            "seqserve_ort_run_seconds",
            "Time in ONNX Runtime per call.",
            ["model", "version"],
            buckets=_ORT_BUCKETS,
            registry=registry,
        )
        self.ort_batch = Histogram(
            "seqserve_ort_batch_size",
            "Sequences per ONNX Runtime call.",
            ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=registry,
        )
        self.sessions_created = Counter(
            "seqserve_sessions_created_total", "Sessions created.", registry=registry
        )
        self.sessions_expired = Counter(
            "seqserve_sessions_expired_total", "Sessions expired by a TTL.", registry=registry
        )
        self.sessions_evicted = Counter(
            "seqserve_sessions_evicted_total",
            "Idle sessions evicted to admit new ones.",
            registry=registry,
        )
        self.sessions_deleted = Counter(
            "seqserve_sessions_deleted_total", "Sessions deleted by clients.", registry=registry
        )
        self.steps = Counter(
            "seqserve_steps_total", "Timesteps applied to sessions.", ["model"], registry=registry
        )
        self.replays = Counter(
            "seqserve_step_replays_total",
            "Retried step requests answered from the stored response.",
            registry=registry,
        )
        self.sessions_active = Gauge(
            "seqserve_sessions_active", "Live sessions in this process's store.", registry=registry
        )
        self.state_bytes = Gauge(
            "seqserve_state_bytes", "Bytes of recurrent state held.", registry=registry
        )
        self.queue_depth = Gauge(
            "seqserve_batch_queue_depth",
            "Steps waiting for a batch, per model version.",
            ["model", "version"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "seqserve_batch_queue_wait_seconds",
            "Time a step waited from its arrival at the batcher to its batch starting.",
            ["model", "version"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.batches_in_flight = Gauge(
            "seqserve_batches_in_flight",
            "Step batches being run (state load, ONNX Runtime, commit), per model version.",
            ["model", "version"],
            registry=registry,
        )
        self.model_info = Gauge(
            "seqserve_model_info",
            "1 for each loaded model version, labelled with the ONNX Runtime provider running it.",
            ["model", "version", "provider"],
            registry=registry,
        )
        self._steps_inc: dict[str, Callable[[float], None]] = {}
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, RSS, open fds (Linux)
        Info("seqserve_build", "Versions this server runs.", registry=registry).info(_build())

    def steps_counter(self, model: str) -> Callable[[float], None]:
        """`seqserve_steps_total{model}`'s inc, its child looked up once per model: a
        `labels()` call costs more than the increment on the per-step path."""
        inc = self._steps_inc.get(model)
        if inc is None:
            inc = self._steps_inc[model] = self.steps.labels(model).inc
        return inc

    def runtime_observer(self, model: str, version: str) -> Callable[[float, int], None]:
        """A callback for each ONNX Runtime call of a model version: (seconds, batch size)."""
        seconds = self.ort_seconds.labels(model, version).observe
        batch = self.ort_batch.labels(model, version).observe

        def observe(elapsed: float, size: int) -> None:
            seconds(elapsed)
            batch(size)

        return observe

    def watch_model(self, model: str, version: str, provider: str) -> None:
        self.model_info.labels(model, version, provider).set(1)

    def batch_observer(self, model: str, version: str, depth: Callable[[], int]) -> BatchObserver:
        """The queue and batch metrics of one model version's batcher (depth read at scrape)."""
        self.queue_depth.labels(model, version).set_function(depth)
        return BatchObserver(
            self.queue_wait.labels(model, version).observe,
            self.batches_in_flight.labels(model, version).inc,
            self.batches_in_flight.labels(model, version).dec,
        )

    def watch_store(self, stats: Callable[[], tuple[int, int]]) -> None:
        """Read the gauges from the store at scrape time."""
        self.sessions_active.set_function(lambda: stats()[0])
        self.state_bytes.set_function(lambda: stats()[1])


class BatchObserver:
    """Callbacks a batcher calls once per batch: queue waits, batch start and end."""

    def __init__(
        self,
        wait: Callable[[float], None],
        started: Callable[[], None],
        finished: Callable[[], None],
    ) -> None:
        self.wait = wait
        self.started = started
        self.finished = finished


def _build() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("seqserve"),
        "python": platform.python_version(),
        # one of the two is installed (seqserve[gpu] brings the CUDA build)
        "onnxruntime": next(
            (v for v in (version("onnxruntime"), version("onnxruntime-gpu")) if v != "unknown"),
            "unknown",
        ),
        "numpy": version("numpy"),
    }
