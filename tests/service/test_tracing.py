"""OpenTelemetry tracing against the real app: traceparent in and out, request, batch, ONNX
Runtime and store-commit spans, trace ids in the JSON logs, and nothing when off."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from seqserve.service.logs import JsonFormatter

from tests.conftest import IN_CI
from tests.service.conftest import MakeClient, new_session

try:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:
    if IN_CI:
        raise
    pytest.skip("needs seqserve[otel] (opentelemetry-sdk)", allow_module_level=True)

TRACING = {"enabled": True, "exporter": "global"}
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this test (the process-wide provider is set once; exporter cleared)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def _named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def test_a_request_continues_the_callers_trace_and_answers_traceparent(
    make_client: MakeClient, spans: InMemorySpanExporter
) -> None:
    client = make_client(tracing=TRACING)
    sent = _traceparent(0xABC, 0x123)
    response = client.get("/v1/models/diffed", headers={"traceparent": sent})
    assert response.status_code == 200
    (server,) = _named(spans, "GET /v1/models/{model}")
    assert server.kind == trace.SpanKind.SERVER
    assert server.parent is not None
    assert server.parent.span_id == 0x123
    assert server.context.trace_id == 0xABC
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert response.headers["traceparent"] == _traceparent(0xABC, server.context.span_id)


def test_a_body_refused_before_reading_still_ends_its_span(
    make_client: MakeClient, spans: InMemorySpanExporter
) -> None:
    client = make_client(tracing=TRACING, limits={"max_body_bytes": 1024})
    response = client.post(
        "/v1/sessions",
        content=b"x" * 2048,
        headers={"traceparent": _traceparent(0xABC, 0x5), "content-type": "application/json"},
    )
    assert response.status_code == 413
    (server,) = _named(spans, "POST /v1/sessions")
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 413
    assert response.headers["traceparent"] == _traceparent(0xABC, server.context.span_id)
    assert trace.get_current_span().get_span_context().is_valid is False  # context detached


def test_a_batch_span_links_every_request_that_joined_it(
    make_client: MakeClient, spans: InMemorySpanExporter
) -> None:
    # the batch closes when all four steps are in (not adaptive; the window is only a cap)
    batching = {"max_batch_size": 4, "max_wait_us": 1_000_000, "adaptive": False}
    client = make_client(tracing=TRACING, batching=batching)
    ids = [new_session(client)["id"] for _ in range(4)]
    spans.clear()

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await asyncio.gather(
                *(
                    http.post(
                        f"/v1/sessions/{sid}/steps",
                        json={"inputs": [[315.0]]},
                        headers={"traceparent": _traceparent(k + 1, 0x99)},
                    )
                    for k, sid in enumerate(ids)
                )
            )

    responses = client.portal.call(burst)  # type: ignore[union-attr]
    assert [r.status_code for r in responses] == [200] * 4
    requests = _named(spans, "POST /v1/sessions/{session_id}/steps")
    assert sorted(s.context.trace_id for s in requests) == [1, 2, 3, 4]
    (batch,) = _named(spans, "step batch")
    linked = {(link.context.trace_id, link.context.span_id) for link in batch.links}
    assert linked == {(s.context.trace_id, s.context.span_id) for s in requests}
    assert batch.attributes is not None
    assert batch.attributes["seqserve.batch_size"] == 4
    for name in ("onnxruntime run", "store commit"):
        (child,) = _named(spans, name)
        assert child.parent is not None
        assert child.parent.span_id == batch.context.span_id


def test_json_logs_carry_the_trace_id(make_client: MakeClient, spans: InMemorySpanExporter) -> None:
    client = make_client(tracing=TRACING)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    access = logging.getLogger("seqserve.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        client.get("/v1/models", headers={"traceparent": _traceparent(0xFEED, 0x1)})
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    entries: list[dict[str, Any]] = [orjson.loads(line) for line in lines]
    assert [e["trace_id"] for e in entries] == [f"{0xFEED:032x}"]


def test_tracing_off_builds_nothing_and_sends_no_traceparent(make_client: MakeClient) -> None:
    client = make_client()
    response = client.get("/v1/models", headers={"traceparent": _traceparent(0xABC, 0x123)})
    assert response.status_code == 200
    assert "traceparent" not in response.headers
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from seqserve.service.app import create_app\n"
        "from seqserve.service.settings import Settings\n"
        "with TestClient(create_app(Settings())) as c:\n"
        "    assert c.get('/v1/models').status_code == 200\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
