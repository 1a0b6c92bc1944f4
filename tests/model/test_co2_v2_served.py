"""co2 v2 served unchanged through the v1 API by a real server: offline test MAE reproduced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.launch import ServerProcess

pytestmark = pytest.mark.model

H = 13


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shipped_repo: Path) -> Iterator[str]:
    proc = ServerProcess.seqserve(shipped_repo, tmp_path_factory.mktemp("co2-v2-logs"))
    proc.start()
    yield proc.url
    proc.stop()


def new_session(client: httpx.Client, version: str) -> str:
    r = client.post("/v1/sessions", json={"model": "co2", "version": version})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == version
    return str(r.json()["id"])


def test_served_forecasts_reproduce_the_offline_test_mae(server: str, shipped_repo: Path) -> None:
    """Stream 1958-2001 week by week into one v2 session and forecast 13 weeks from every
    origin: the h=1 and h=13 test MAE equal the manifest's (scored offline through ORT)."""
    from seqserve.model.data import load_prepared

    prep = load_prepared()
    raw, n = prep.raw, len(prep.raw)
    first = prep.test_start - H
    metrics = json.loads((shipped_repo / "co2" / "2" / "model.json").read_text())["metrics"]
    with httpx.Client(base_url=server, timeout=60) as client:
        sid = new_session(client, "2")
        r = client.post(
            f"/v1/sessions/{sid}/steps", json={"inputs": raw[: first + 1, None].tolist()}
        )
        assert r.status_code == 200, r.text
        paths = []
        for o in range(first, n - 1):
            r = client.post(f"/v1/sessions/{sid}/forecast", json={"horizon": H})
            assert r.status_code == 200, r.text
            paths.append([row[0] for row in r.json()["forecast"]])
            r = client.post(f"/v1/sessions/{sid}/steps", json={"inputs": [[raw[o + 1]]]})
            assert r.status_code == 200, r.text
    paths_arr = np.array(paths)
    targets = np.arange(prep.test_start, n)
    for h in (1, H):
        mae = np.abs(paths_arr[targets - h - first, h - 1] - raw[targets]).mean()
        assert mae == pytest.approx(metrics["test"][f"h{h}"]["model"]["mae"], abs=1e-4)
    # and the v2 scores are the ones docs/model.md reports, beating v1's at both horizons
    v1 = json.loads((shipped_repo / "co2" / "1" / "model.json").read_text())["metrics"]
    for h in (1, H):
        assert metrics["test"][f"h{h}"]["model"]["mae"] < v1["test"][f"h{h}"]["model"]["mae"]


def test_v2_sessions_are_chunk_invariant_over_http(server: str) -> None:
    from seqserve.model.data import load_prepared

    raw = load_prepared().raw[:300, None]
    with httpx.Client(base_url=server, timeout=60) as client:
        whole_id, chunked_id = new_session(client, "2"), new_session(client, "2")
        whole = client.post(f"/v1/sessions/{whole_id}/steps", json={"inputs": raw.tolist()})
        outs, start = [], 0
        for size in [1, 2, 5, 1, 17, 74, 200]:
            chunk = raw[start : start + size].tolist()
            r = client.post(f"/v1/sessions/{chunked_id}/steps", json={"inputs": chunk})
            outs += r.json()["outputs"]
            start += size
        assert start == len(raw)
        a = client.post(f"/v1/sessions/{whole_id}/forecast", json={"horizon": H}).json()
        b = client.post(f"/v1/sessions/{chunked_id}/forecast", json={"horizon": H}).json()
    np.testing.assert_allclose(outs, whole.json()["outputs"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(a["forecast"], b["forecast"], atol=1e-5, rtol=0)


def test_new_sessions_default_to_the_newest_version(server: str) -> None:
    """No pin configured: a session without a version gets co2/2; v1 stays servable."""
    with httpx.Client(base_url=server, timeout=60) as client:
        models = client.get("/v1/models").json()["models"]
        co2 = next(m for m in models if m["name"] == "co2")
        assert co2["latest"] == "2"
        assert sorted(co2["versions"]) == ["1", "2"]
        r = client.post("/v1/sessions", json={"model": "co2"})
        assert r.json()["version"] == "2"
        new_session(client, "1")
