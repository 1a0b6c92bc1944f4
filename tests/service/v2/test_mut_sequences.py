"""V2 sequences at the edges the mutation run found: the id bounds (256 characters, the
whole uint64 range), `sequence_step` at both ends of its range on a running sequence, a URL
naming an older version than the pinned one, a sequence whose session expired, and derived
session ids that stay the same across releases."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from seqserve.service.api.context import app_context
from seqserve.service.api.v2.errors import V2Error
from seqserve.service.api.v2.sequences import Sequence, session_id, step
from seqserve.service.runtime.layout import MAX_STEP

from tests.service.clock import FakeClock
from tests.service.conftest import MakeClient
from tests.service.v2.support import infer_body

pytestmark = pytest.mark.service

URL = "/v2/models/multi/infer"


def _infer(client: TestClient, url: str = URL, **params: Any) -> Any:
    body = infer_body([0.25] * 3, [1, 1, 3], **params)
    return client.post(url, content=orjson.dumps(body))


def _error(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"], response.json()


def test_string_ids_hold_up_to_256_characters(v2: TestClient) -> None:
    assert _infer(v2, sequence_id="a" * 256, sequence_start=True).status_code == 200
    assert _infer(v2, sequence_id="a" * 256, sequence_end=True).status_code == 200
    _error(_infer(v2, sequence_id="b" * 257, sequence_start=True), 400, "at most 256 characters")


def test_ids_span_the_whole_uint64_range(v2: TestClient) -> None:
    for seq_id in (2**63, 2**64 - 1):
        started = _infer(v2, sequence_id=seq_id, sequence_start=True)
        assert started.status_code == 200, started.text
        again = _infer(v2, sequence_id=seq_id, sequence_end=True)
        assert again.json()["parameters"]["sequence_step"] == 2


def test_sequence_step_at_the_ends_of_its_range(v2: TestClient) -> None:
    """Below 0 is a bad value (400); MAX_STEP is a valid index, just not this one (409)."""
    assert _infer(v2, sequence_id="ends", sequence_start=True).status_code == 200
    _error(_infer(v2, sequence_id="ends", sequence_step=-1), 400, "must be an integer in")
    _error(_infer(v2, sequence_id="ends", sequence_step=MAX_STEP), 409, "current step 1")
    resumed = _infer(v2, sequence_id="ends", sequence_step=1)
    assert resumed.json()["parameters"] == {"sequence_step": 2}  # nothing was applied


def test_a_url_naming_an_older_version_than_the_pinned_one_is_refused(v2: TestClient) -> None:
    def infer(version: str, **params: Any) -> Any:
        body = infer_body([300.0], [1, 1, 1], sequence_id=4343, **params)
        return v2.post(f"/v2/models/diffed/versions/{version}/infer", content=orjson.dumps(body))

    assert infer("2", sequence_start=True).status_code == 200
    _error(infer("1"), 400, "sequence 4343 of model 'diffed' runs on version 2, not 1")
    assert infer("2", sequence_end=True).json()["parameters"]["sequence_step"] == 2


def test_an_expired_sequence_needs_a_new_start(make_client: MakeClient, clock: FakeClock) -> None:
    client = make_client(sessions={"idle_ttl_s": 30})
    assert _infer(client, sequence_id=9, sequence_start=True).status_code == 200
    clock.advance(31)
    _error(_infer(client, sequence_id=9), 400, "must specify the START flag")
    restarted = _infer(client, sequence_id=9, sequence_start=True)
    assert restarted.json()["parameters"]["sequence_step"] == 1


def test_derived_session_ids_are_stable_across_releases() -> None:
    """Replicas of two releases share Redis during a rolling upgrade: both must derive the
    same session for a running sequence."""
    assert session_id(None, "multi", 7) == "v2-5ab6b6f674d3615529fa2fd196d6e717"
    assert session_id("k", "multi", "7") == "v2-802b8ecedb634b3f7f20cf5e6466bc01"


@pytest.mark.parametrize("ended", ["deleted", "expired"])  # the store answers 404 / 410
def test_a_sequence_ended_before_its_step_answers_not_started(
    make_client: MakeClient, clock: FakeClock, ended: str
) -> None:
    """Another request's END (or the idle TTL) lands after this request found the sequence
    and before it steps: the answer is Triton's 'must specify the START flag', as for any
    ended sequence."""
    client = make_client(sessions={"idle_ttl_s": 30})
    assert _infer(client, sequence_id=7, sequence_start=True).status_code == 200
    engine = app_context(client.app).engine  # type: ignore[arg-type]
    seq = Sequence(7, start=False, end=False)

    async def raced() -> None:
        sid, model = session_id(None, "multi", 7), engine.registry.get("multi", None)
        if ended == "deleted":
            await engine.delete(sid, None)
        else:
            clock.advance(31)
        with pytest.raises(V2Error, match="must specify the START flag"):
            await step(engine, None, sid, model, seq, np.full((1, 3), 0.25))

    client.portal.call(raced)
