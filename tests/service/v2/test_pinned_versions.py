"""A V2 sequence keeps the model version it started on: a URL naming another version is
refused (400, nothing applied), the unversioned URL goes on with the pinned one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context

from tests.service.conftest import co2_like
from tests.service.expected import Expected
from tests.service.v2.support import infer_body

pytestmark = pytest.mark.service


def _infer(v2: TestClient, url: str, chunk: np.ndarray, **params: Any) -> Any:
    body = infer_body(chunk.ravel().tolist(), [1, len(chunk), 1], sequence_id=4242, **params)
    return v2.post(url, content=orjson.dumps(body))


def _outputs(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    y = next(o for o in response.json()["outputs"] if o["name"] == "y")
    return np.reshape(y["data"], y["shape"])[0]


def test_a_url_version_other_than_the_pinned_one_is_refused(v2: TestClient, repo: Path) -> None:
    raw = co2_like(9, seed=21)
    v1, v2_url, latest = (
        "/v2/models/diffed/versions/1/infer",
        "/v2/models/diffed/versions/2/infer",
        "/v2/models/diffed/infer",
    )
    got = [_outputs(_infer(v2, v1, raw[:3], sequence_start=True))]
    refused = _infer(v2, v2_url, raw[3:6])
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["error"] == "sequence 4242 of model 'diffed' runs on version 1, not 2"
    # nothing was applied: the unversioned URL (latest is 2) goes on with version 1 from step 3
    got.append(_outputs(_infer(v2, latest, raw[3:6])))
    got.append(_outputs(_infer(v2, v1, raw[6:], sequence_end=True)))
    want = Expected(repo / "diffed" / "1").run(raw)[0]
    np.testing.assert_allclose(np.concatenate(got), want, atol=1e-5)
    assert not np.allclose(want, Expected(repo / "diffed" / "2").run(raw)[0], atol=1e-3)


def test_a_sequence_whose_version_was_unloaded_says_so(v2: TestClient) -> None:
    """Not Triton's 'must specify the START flag': the sequence exists, its version went."""
    raw = co2_like(2, seed=22)
    assert _infer(v2, "/v2/models/diffed/versions/1/infer", raw[:1], sequence_start=True)
    engine = app_context(v2.app).engine  # type: ignore[arg-type]
    engine.registry.remove("diffed", "1")
    for url in ("/v2/models/diffed/infer", "/v2/models/diffed/versions/2/infer"):
        answer = _infer(v2, url, raw[1:])
        assert answer.status_code == 400, answer.text
        assert "version 1 " in answer.json()["error"], answer.text
        assert "START" not in answer.json()["error"]
