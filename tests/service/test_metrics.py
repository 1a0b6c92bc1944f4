"""The metrics the operators' docs promise: every exported family documented, queue and batch
metrics per model, build and provider info, docs pages labelled by path."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from seqserve.service.app import create_app
from seqserve.service.settings import Settings

from tests.service.conftest import MakeClient, new_session, step

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _scrape(client: TestClient) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_every_exported_metric_is_in_docs_metrics_md(repo: Path) -> None:
    registry = CollectorRegistry()
    create_app(Settings(model_repository=repo), registry)  # metrics register at creation
    suffix = {"counter": "_total", "info": "_info"}
    exported = {f.name + suffix.get(f.type, "") for f in registry.collect()}
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOC.read_text(), re.MULTILINE))
    assert exported - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exported == set(), "in docs/metrics.md but not exported"


def test_queue_batch_build_and_provider_metrics(make_client: MakeClient) -> None:
    client = make_client()
    sid = new_session(client)["id"]
    for k in range(3):
        assert step(client, sid, [[315.0 + k]]).status_code == 200
    found = _scrape(client)
    labels = {"model": "diffed", "version": "2"}
    assert (labels, 3.0) in found["seqserve_batch_queue_wait_seconds_count"]
    assert (labels, 0.0) in found["seqserve_batch_queue_depth"]
    assert (labels, 0.0) in found["seqserve_batches_in_flight"]
    info = {tuple(sorted(lbl.items())) for lbl, _ in found["seqserve_model_info"]}
    assert (("model", "diffed"), ("provider", "CPUExecutionProvider"), ("version", "2")) in info
    ((build, one),) = found["seqserve_build_info"]
    assert one == 1.0
    assert build["version"]
    assert build["onnxruntime"] != "unknown"
    assert found["process_cpu_seconds_total"][0][1] > 0


def test_docs_pages_are_labelled_by_path_not_unmatched(client: TestClient) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert client.get(path).status_code == 200
    assert client.get("/no/such/page").status_code == 404
    routes = {
        (lbl["route"], lbl["status"])
        for lbl, _ in _scrape(client)["seqserve_request_duration_seconds_count"]
    }
    assert {("/docs", "200"), ("/openapi.json", "200"), ("/redoc", "200")} <= routes
    assert ("unmatched", "200") not in routes
    assert ("unmatched", "404") in routes
