"""Optional OpenTelemetry tracing (`seqserve[otel]`): W3C traceparent in and out, spans for the
request, the step batch it joined, the ONNX Runtime run and the store commit. Nothing here
imports opentelemetry unless `tracing.enabled` is set, and callers hold `None` when it is off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from seqserve.service import logs
from seqserve.service.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer

_SCOPE = "seqserve"


def build(settings: TracingSettings) -> Tracing | None:
    """The app's tracing, or None when off (then no opentelemetry import happens)."""
    if not settings.enabled:
        return None
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise RuntimeError(
            "SEQSERVE_TRACING__ENABLED=true needs OpenTelemetry: pip install 'seqserve[otel]'"
        ) from exc
    if settings.exporter == "global":
        tracing = Tracing(trace.get_tracer(_SCOPE))
    else:
        provider = _own_provider(settings)
        tracing = Tracing(provider.get_tracer(_SCOPE), provider)
    logs.trace_ids = tracing.current_trace_id
    return tracing


def _own_provider(settings: TracingSettings) -> Any:
    """An SDK provider of this app's own (never the process-wide one), batching to its exporter."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter: Any
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(
                "SEQSERVE_TRACING__EXPORTER=otlp needs the OTLP exporter: pip install "
                "'seqserve[otel]' (or set SEQSERVE_TRACING__EXPORTER=console or global)"
            ) from exc
        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """The spans seqserve makes; W3C trace context (traceparent) is the propagation format."""

    def __init__(self, tracer: Tracer, provider: Any = None) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._provider = provider  # our own SDK provider, flushed at shutdown; None for global
        self._trace = trace
        self._context = context
        self._propagator = TraceContextTextMapPropagator()

    def close(self) -> None:
        """Export the spans still queued (the app is stopping)."""
        if self._provider is not None:
            self._provider.shutdown()

    def start_request(self, method: str, path: str, headers: dict[bytes, bytes]) -> RequestSpan:
        """A server span continuing the caller's traceparent (if any), made current."""
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in headers.items()
            if k in (b"traceparent", b"tracestate")
        }
        parent = self._propagator.extract(carrier)
        span = self._tracer.start_span(
            f"{method} {path}",
            parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return RequestSpan(self, span, token, method)

    def current(self) -> SpanContext | None:
        """The current span's context (a step's request span, carried onto its StepJob)."""
        ctx = self._trace.get_current_span().get_span_context()
        return ctx if ctx.is_valid else None

    def current_trace_id(self) -> str | None:
        ctx = self._trace.get_current_span().get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    @contextlib.contextmanager
    def batch(
        self, model: str, version: str, links: Sequence[SpanContext | None]
    ) -> Iterator[None]:
        """One span per step batch, linked from every request span that joined it."""
        from opentelemetry.trace import Link

        span = self._tracer.start_span(
            "step batch",
            links=[Link(c) for c in links if c is not None],
            attributes={"seqserve.model": model, "seqserve.version": version},
        )
        span.set_attribute("seqserve.batch_size", len(links))
        with self._trace.use_span(span, end_on_exit=True):
            yield

    def child(self, name: str) -> contextlib.AbstractContextManager[Span]:
        """A span under the current one (ONNX Runtime run, store commit)."""
        return self._tracer.start_as_current_span(name)


class RequestSpan:
    """An open request span: headers to send back, then end it with the status."""

    def __init__(self, tracing: Tracing, span: Span, token: object, method: str) -> None:
        self._tracing = tracing
        self.span = span
        self._token = token
        self._method = method

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        carrier: dict[str, str] = {}
        ctx = self._tracing._trace.set_span_in_context(self.span)
        self._tracing._propagator.inject(carrier, ctx)
        return [(k.encode(), v.encode()) for k, v in carrier.items()]

    def end(self, status: int, route: str | None) -> None:
        if route is not None:
            self.span.update_name(f"{self._method} {route}")
            self.span.set_attribute("http.route", route)
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(self._tracing._trace.Status(self._tracing._trace.StatusCode.ERROR))
        self.span.end()
        self._tracing._context.detach(self._token)
