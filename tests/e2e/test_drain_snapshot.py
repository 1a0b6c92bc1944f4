"""SIGTERM on a real memory-store server: it drains (new sessions 503, steps still served),
snapshots its sessions, and the next start restores them; a bad snapshot stops the start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import StartServer
from tests.e2e.replicas.test_replicas import create, step
from tests.service.conftest import co2_like
from tests.service.expected import Expected

pytestmark = pytest.mark.e2e


def test_sigterm_drains_then_the_snapshot_restores_sessions(
    start_server: StartServer, repo: Path, tmp_path: Path
) -> None:
    exp = Expected(repo / "diffed" / "2")
    raw = co2_like(24, seed=8)
    snap = tmp_path / "sessions.snap"
    env = {"SEQSERVE_SNAPSHOT_PATH": str(snap), "SEQSERVE_DRAIN_DELAY_S": "1.5"}
    server = start_server(**env)
    assert server.proc is not None
    sid = create(server)
    outputs = step(server, sid, raw[:10], 0)["outputs"]
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.url}/readyz").status_code != 503:  # draining shows at once
        assert time.monotonic() < deadline
    refused = httpx.post(f"{server.url}/v1/sessions", json={"model": "diffed"})
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) > 0
    assert "another replica" in refused.json()["detail"]
    outputs += step(server, sid, raw[10:15], 10)["outputs"]  # live streams still served
    server.proc.wait(30)
    assert snap.is_file()

    again = start_server(**env)
    assert httpx.get(f"{again.url}/v1/sessions/{sid}").json()["step"] == 15
    outputs += step(again, sid, raw[15:], 15)["outputs"]
    np.testing.assert_allclose(outputs, exp.run(raw)[0], atol=1e-5)
    assert not snap.exists()
    assert snap.with_name("sessions.snap.restored").is_file()


def test_a_corrupt_snapshot_stops_the_start_and_is_kept(
    start_server: StartServer, tmp_path: Path
) -> None:
    snap = tmp_path / "sessions.snap"
    snap.write_bytes(b"SEQSERVE-SNAPSHOT/1\n" + b"\0" * 64)
    with pytest.raises(RuntimeError, match="refusing to start.*checksum mismatch"):
        start_server(SEQSERVE_SNAPSHOT_PATH=str(snap))
    assert snap.read_bytes() == b"SEQSERVE-SNAPSHOT/1\n" + b"\0" * 64
