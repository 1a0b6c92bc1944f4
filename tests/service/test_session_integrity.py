"""No session can corrupt another's: imported step indices stay JSON-safe, a batch at the edge
commits its victim exactly once, and DELETE waits for a queued step (two model versions with
different state sizes served at once)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context
from seqserve.service.batching.batcher import StepResult
from seqserve.service.errors import BadInput, Gone, NotFound

from tests.onnx_models import random_model
from tests.service.conftest import MakeClient, new_session, step
from tests.service.expected import Expected

TOL = 1e-5
JSON_SAFE = 2**53 - 1
WIDE_BATCHES = {"max_wait_us": 300_000, "adaptive": False}


def _with_step(doc: dict[str, Any], value: int) -> dict[str, Any]:
    """The state document at another step, its checksum recomputed as anyone can."""
    blobs = [base64.b64decode(t["data"]) for t in doc["tensors"].values()]
    blobs += [np.asarray(doc[k], "<f8").tobytes() for k in ("prev_x", "last_y")]
    digest = hashlib.sha256(f"{doc['model']}\0{doc['version']}\0{value}".encode())
    for blob in blobs:
        digest.update(len(blob).to_bytes(8, "little") + blob)
    return {**doc, "step": value, "checksum": digest.hexdigest()}


def _doc(client: TestClient) -> dict[str, Any]:
    sid = new_session(client)["id"]
    assert step(client, sid, [[315.0], [316.0]]).status_code == 200
    doc = dict(client.get(f"/v1/sessions/{sid}/state").json())
    assert _with_step(doc, doc["step"]) == doc  # the recomputed checksum is the real one
    return doc


@pytest.mark.parametrize("value", [2**53, 2**63 - 1, 2**64])
def test_an_import_past_the_json_safe_step_is_422_and_creates_nothing(
    client: TestClient, value: int
) -> None:
    doc = _doc(client)
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    before = engine.store.stats()
    r = client.post("/v1/sessions", json={"state": _with_step(doc, value)})
    assert r.status_code == 422, r.text
    assert "state.step" in r.json()["detail"]
    assert engine.store.stats() == before  # no slot, no state bytes taken
    listed = client.get("/v1/sessions")
    assert listed.status_code == 200
    assert len(listed.json()["sessions"]) == before[0]


def test_steps_at_the_json_safe_edge_commit_their_batch_mate_exactly_once(
    make_client: MakeClient, repo: Path
) -> None:
    client = make_client(batching={**WIDE_BATCHES, "max_batch_size": 2})
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    doc = _doc(client)

    def imported(value: int) -> str:
        r = client.post("/v1/sessions", json={"state": _with_step(doc, value)})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    edge, over = imported(JSON_SAFE - 1), imported(JSON_SAFE)
    victim = new_session(client, version=doc["version"])["id"]
    raw = np.array([[315.5]])

    async def batch() -> list[Any]:
        return list(
            await asyncio.gather(
                engine.step(victim, None, raw, 0),
                engine.step(edge, None, raw, JSON_SAFE - 1),
                engine.step(over, None, raw, JSON_SAFE),
                return_exceptions=True,
            )
        )

    got_victim, got_edge, got_over = client.portal.call(batch)  # type: ignore[union-attr]
    assert isinstance(got_over, BadInput), got_over
    assert isinstance(got_edge, StepResult), got_edge
    assert got_edge.step == JSON_SAFE
    assert isinstance(got_victim, StepResult), got_victim
    assert got_victim.step == 1
    assert client.get(f"/v1/sessions/{edge}").json()["step"] == JSON_SAFE
    assert client.get(f"/v1/sessions/{over}").json()["step"] == JSON_SAFE
    # the victim's documented retry replays; its state advanced once
    retry = step(client, victim, raw.tolist(), step=0)
    assert retry.status_code == 200
    assert retry.json()["step"] == 1
    assert retry.headers["seqserve-replayed"] == "true"
    exp = Expected(repo / "diffed" / doc["version"])
    want = exp.run(np.concatenate([raw, [[316.0]]]))[0]
    after = step(client, victim, [[316.0]], step=1).json()["outputs"]
    np.testing.assert_allclose(after, want[1:], atol=TOL)
    assert client.get("/v1/sessions").status_code == 200


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 and 2 of one model with different state sizes."""

    root = tmp_path_factory.mktemp("twins")
    random_model(root, name="twin", version="1", hidden_size=4, seed=5)
    random_model(root, name="twin", version="2", hidden_size=12, num_layers=2, seed=6)
    return root


def test_delete_waits_for_a_queued_step_and_versions_never_share_a_batch(
    make_client: MakeClient, twins: Path
) -> None:
    client = make_client(twins, batching=WIDE_BATCHES)
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    raw_x = np.array([[0.25]])

    async def scenario() -> tuple[Any, str]:
        x = await engine.create_session(None, "twin", "1")
        stepping = asyncio.ensure_future(engine.step(x.id, None, raw_x, 0))
        for _ in range(3):  # the step is queued in the (wide) batch window
            await asyncio.sleep(0)
        deleting = asyncio.ensure_future(engine.delete(x.id, None))
        for _ in range(3):
            await asyncio.sleep(0)
        # a session of the other version, created while x's step is still queued
        y = await engine.create_session(None, "twin", "2")
        result, deleted = await asyncio.gather(stepping, deleting, return_exceptions=True)
        assert deleted is None, deleted
        with pytest.raises(NotFound):
            await engine.get_session(x.id, None)
        return result, y.id

    result, y = client.portal.call(scenario)  # type: ignore[union-attr]
    if isinstance(result, StepResult):  # completed before the delete
        want = Expected(twins / "twin" / "1").run(raw_x)[0]
        np.testing.assert_allclose(result.outputs, want, atol=TOL)
    else:  # or failed cleanly
        assert isinstance(result, NotFound | Gone), result
    doc = client.get(f"/v1/sessions/{y}/state").json()
    assert doc["step"] == 0
    for tensor in doc["tensors"].values():
        assert not np.frombuffer(base64.b64decode(tensor["data"]), "<f4").any()
    raw_y = np.random.default_rng(3).normal(size=(6, 1))
    exp = Expected(twins / "twin" / "2")
    for start in range(0, 6, 2):
        r = step(client, y, raw_y[start : start + 2].tolist(), step=start)
        assert r.status_code == 200, r.text
        want = exp.run(raw_y[: start + 2])[0][start:]
        np.testing.assert_allclose(r.json()["outputs"], want, atol=TOL)
