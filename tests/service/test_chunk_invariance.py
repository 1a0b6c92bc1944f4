"""Property: any split of a sequence into step requests gives the whole-sequence result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqserve.service.api.context import app_context
from seqserve.service.app import create_app
from seqserve.service.settings import Settings
from seqserve.service.state.codec import decode_state

from tests.service.expected import Expected

LENGTH = 60


@pytest.fixture(scope="module")
def shared_client(repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model_repository=repo))) as client:
        yield client


@pytest.fixture(scope="module")
def offline(repo: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    rng = np.random.default_rng(11)
    cases = {}
    for model, version, n_feat in (("diffed", "2", 1), ("multi", "1", 3), ("gru", "1", 2)):
        raw = np.cumsum(rng.normal(0, 1, (LENGTH, n_feat)), axis=0) + 300 * (n_feat == 1)
        outputs, states = Expected(repo / model / version).run(raw)
        cases[model] = (raw, outputs, states)
    return cases


@st.composite
def splits(draw: st.DrawFn) -> tuple[str, list[int]]:
    model = draw(st.sampled_from(["diffed", "multi", "gru"]))
    cuts = draw(st.sets(st.integers(1, LENGTH - 1), max_size=12))
    return model, [0, *sorted(cuts), LENGTH]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=splits())
def test_any_chunking_equals_the_whole_sequence(
    shared_client: TestClient, offline: dict, case: tuple[str, list[int]]
) -> None:
    model, bounds = case
    raw, want_out, want_states = offline[model]
    sid = shared_client.post("/v1/sessions", json={"model": model}).json()["id"]
    got = []
    for start, stop in zip(bounds, bounds[1:], strict=False):
        r = shared_client.post(
            f"/v1/sessions/{sid}/steps", json={"inputs": raw[start:stop].tolist(), "step": start}
        )
        assert r.status_code == 200, r.text
        got.extend(r.json()["outputs"])
    np.testing.assert_allclose(np.array(got), want_out, atol=1e-5, rtol=0)
    doc = shared_client.get(f"/v1/sessions/{sid}/state").json()
    assert doc["step"] == LENGTH
    engine = app_context(shared_client.app).engine  # type: ignore[arg-type]
    names = engine.registry.get(model).state_names
    _, rows = decode_state(doc, names, engine.registry.get(model).layout)
    for have, want in zip(rows.tensors, want_states, strict=True):
        np.testing.assert_allclose(have[0], want, atol=1e-5, rtol=0)
    shared_client.delete(f"/v1/sessions/{sid}")
