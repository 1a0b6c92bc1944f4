"""The repository while the server runs: versions loaded and unloaded through the API (and by
polling), sessions pinned to their version, admin keys and the control modes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import StartServer
from tests.e2e.repository_support import (
    MODEL,
    TOL,
    create,
    index,
    load,
    reference,
    repository,
    series,
    stage,
    step,
    wait_ready,
)

pytestmark = pytest.mark.e2e


def _outputs(response: httpx.Response) -> list[list[float]]:
    assert response.status_code == 200, response.text
    return list(response.json()["outputs"])


def test_a_version_copied_in_loads_and_old_sessions_keep_stepping(
    start_server: StartServer, tmp_path: Path
) -> None:
    root = repository(tmp_path, "1")
    server = start_server(root)
    raw = series(30, seed=1)
    old = create(server)
    assert old["version"] == "1"
    first = _outputs(step(server, old["id"], raw[:12], 0))

    stage(root, "2")
    assert index(server)["2"] == {
        "name": MODEL,
        "version": "2",
        "state": "UNAVAILABLE",
        "reason": "not loaded",
    }
    assert load(server).status_code == 200
    assert index(server)["2"]["state"] == "READY"
    assert set(index(server, ready=True)) == {"1", "2"}

    # the old session stays on version 1; new sessions land on version 2
    rest = _outputs(step(server, old["id"], raw[12:], 12))
    np.testing.assert_allclose(first + rest, reference(root, "1", raw), atol=TOL)
    new = create(server)
    assert new["version"] == "2"
    np.testing.assert_allclose(
        _outputs(step(server, new["id"], raw, 0)), reference(root, "2", raw), atol=TOL
    )
    listed = httpx.get(f"{server.url}/v1/models").json()["models"]
    [rnn] = [m for m in listed if m["name"] == MODEL]
    assert (rnn["versions"], rnn["latest"]) == (["1", "2"], "2")
    assert [s["state"] for s in rnn["states"]] == ["READY", "READY"]

    # a broken version 3 (its file disagrees with the manifest's hash) is refused, with why
    broken = stage(root, "3")
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes() + b"\0")
    refused = load(server)
    assert refused.status_code == 400
    assert "version 3" in refused.json()["error"]
    assert "SHA-256" in refused.json()["error"]
    entry = index(server)["3"]
    assert entry["state"] == "UNAVAILABLE"
    assert "SHA-256" in entry["reason"]
    v1_refused = httpx.post(f"{server.url}/v1/models/{MODEL}/load")
    assert v1_refused.status_code == 422
    assert v1_refused.headers["content-type"] == "application/problem+json"
    assert [v["state"] for v in v1_refused.json()["versions"]] == ["READY", "READY", "UNAVAILABLE"]
    # versions 1 and 2 keep serving, and new sessions still get version 2
    more = series(5, seed=2)
    np.testing.assert_allclose(
        first + rest + _outputs(step(server, old["id"], more, 30)),
        reference(root, "1", np.concatenate([raw, more])),
        atol=TOL,
    )
    assert create(server)["version"] == "2"


async def _stream(
    client: httpx.AsyncClient, sid: str, raw: np.ndarray, chunk: int
) -> list[list[float]]:
    outputs: list[list[float]] = []
    for at in range(0, len(raw), chunk):
        body = {"inputs": raw[at : at + chunk].tolist(), "step": at}
        r = await client.post(f"/v1/sessions/{sid}/steps", json=body)
        assert r.status_code == 200, r.text
        outputs += r.json()["outputs"]
    return outputs


def test_versions_of_different_state_sizes_step_concurrently(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Sessions of v1 (hidden 16) and v2 (hidden 8) stepped at once, in a batch window wide
    enough to gather both: each output matches its own version's reference."""
    root = repository(tmp_path, "1", "2")
    server = start_server(
        root, SEQSERVE_BATCHING__MAX_WAIT_US="20000", SEQSERVE_BATCHING__ADAPTIVE="false"
    )
    sessions = [create(server, version) for version in ("1", "2") * 4]
    inputs = [series(9, seed=20 + k) for k in range(len(sessions))]

    async def run() -> list[list[list[float]]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            streams = [
                _stream(client, s["id"], raw, 3) for s, raw in zip(sessions, inputs, strict=True)
            ]
            return await asyncio.gather(*streams)

    for s, raw, got in zip(sessions, inputs, asyncio.run(run()), strict=True):
        np.testing.assert_allclose(got, reference(root, s["version"], raw), atol=TOL)


def test_unloading_a_version_with_a_step_in_flight(
    start_server: StartServer, tmp_path: Path
) -> None:
    root = repository(tmp_path, "1", "2")
    # a wide, fixed batch window keeps the step queued while the unload arrives
    server = start_server(
        root, SEQSERVE_BATCHING__MAX_WAIT_US="500000", SEQSERVE_BATCHING__ADAPTIVE="false"
    )
    raw = series(8, seed=3)
    pinned = create(server, "1")
    other = create(server, "2")
    v2_seq = {
        "inputs": [{"name": "x", "shape": [1, 4, 2], "datatype": "FP32", "data": []}],
        "parameters": {"sequence_id": 77, "sequence_start": True},
    }
    v2_seq["inputs"][0]["data"] = raw[:4].ravel().tolist()  # type: ignore[index]
    started = httpx.post(f"{server.url}/v2/models/{MODEL}/versions/1/infer", json=v2_seq)
    assert started.status_code == 200, started.text

    async def race() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            body = {"inputs": raw[:4].tolist(), "step": 0}
            in_flight = asyncio.create_task(
                client.post(f"/v1/sessions/{pinned['id']}/steps", json=body)
            )
            await asyncio.sleep(0.1)  # lets the step reach the batcher; either order is valid
            unloaded = await client.post(f"/v1/models/{MODEL}/unload", json={"version": "1"})
            return await in_flight, unloaded

    stepped, unloaded = asyncio.run(race())
    assert unloaded.status_code == 200, unloaded.text
    states = {v["version"]: v for v in unloaded.json()["versions"]}
    assert states["1"] == {"version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}
    assert stepped.status_code in (200, 410), stepped.text
    at = 0
    if stepped.status_code == 200:  # it ran before the unload, on version 1's weights
        np.testing.assert_allclose(
            stepped.json()["outputs"], reference(root, "1", raw[:4]), atol=TOL
        )
        at = 4
    gone = step(server, pinned["id"], raw[4:], at)
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    problem = gone.json()
    assert problem["detail"] == f"model {MODEL} version 1 was unloaded"
    assert problem["type"].endswith("version-unloaded")
    # the V2 sequence on version 1 gets a V2 error, never a step on version 2
    v2_seq["parameters"] = {"sequence_id": 77}
    v2_gone = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=v2_seq)
    assert v2_gone.status_code == 400
    assert v2_gone.json() == {"error": f"model {MODEL} version 1 was unloaded"}
    # version 2 is untouched; new sessions go there; the session can still be deleted
    np.testing.assert_allclose(
        _outputs(step(server, other["id"], raw, 0)), reference(root, "2", raw), atol=TOL
    )
    assert create(server)["version"] == "2"
    assert httpx.delete(f"{server.url}/v1/sessions/{pinned['id']}").status_code == 204
    # loading version 1 again brings it back for new sessions
    assert load(server).status_code == 200
    assert create(server, "1")["version"] == "1"


def test_a_pinned_default_version_wins_over_the_newest(
    start_server: StartServer, tmp_path: Path
) -> None:
    root = repository(tmp_path, "1")
    server = start_server(root, SEQSERVE_MODEL_DEFAULT_VERSIONS=f'{{"{MODEL}": "1"}}')
    stage(root, "2")
    assert load(server).status_code == 200
    assert create(server)["version"] == "1"
    assert create(server, "2")["version"] == "2"


def test_control_mode_none_turns_the_api_off(start_server: StartServer, tmp_path: Path) -> None:
    root = repository(tmp_path, "1")
    server = start_server(root, SEQSERVE_MODEL_CONTROL_MODE="none")
    stage(root, "2")
    refused = load(server)
    assert refused.status_code == 403
    assert "model control is off" in refused.json()["error"]
    v1 = httpx.post(f"{server.url}/v1/models/{MODEL}/unload")
    assert v1.status_code == 403
    assert v1.headers["content-type"] == "application/problem+json"
    assert index(server)["2"]["state"] == "UNAVAILABLE"  # the index still reads
    assert create(server)["version"] == "1"


def test_poll_mode_loads_a_new_version_by_itself(start_server: StartServer, tmp_path: Path) -> None:
    root = repository(tmp_path, "1")
    server = start_server(
        root, SEQSERVE_MODEL_CONTROL_MODE="poll", SEQSERVE_MODEL_POLL_INTERVAL_S="0.2"
    )
    stage(root, "2")
    wait_ready(server, "2")
    assert create(server)["version"] == "2"


def test_only_admin_keys_change_the_repository(start_server: StartServer, tmp_path: Path) -> None:
    root = repository(tmp_path, "1")
    server = start_server(
        root,
        SEQSERVE_SECURITY__API_KEYS='["user-key"]',
        SEQSERVE_SECURITY__ADMIN_API_KEYS='["admin-key"]',
    )
    stage(root, "2")
    assert load(server).status_code == 401
    assert load(server, **{"X-API-Key": "wrong"}).status_code == 401
    forbidden = load(server, **{"X-API-Key": "user-key"})
    assert forbidden.status_code == 403
    assert "admin key" in forbidden.json()["error"]
    unload = f"{server.url}/v1/models/{MODEL}/unload"
    assert httpx.post(unload, headers={"X-API-Key": "user-key"}).status_code == 403
    assert index(server, **{"X-API-Key": "user-key"})["2"]["state"] == "UNAVAILABLE"
    assert load(server, **{"X-API-Key": "admin-key"}).status_code == 200
    assert index(server, **{"X-API-Key": "admin-key"})["2"]["state"] == "READY"
