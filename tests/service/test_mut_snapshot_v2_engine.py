"""The per-client cap on heavy calls without API keys: it counts each caller apart, so one
client's open forecast stream neither frees another's cap nor uses it up (engine open lines of
the mutation run, judged with the snapshot and V2 modules)."""

from __future__ import annotations

import numpy as np
import pytest
from seqserve.service.api.context import app_context
from seqserve.service.errors import Overloaded

from tests.service.conftest import MakeClient, co2_like, new_session, step


def test_heavy_calls_are_capped_per_caller_without_keys(make_client: MakeClient) -> None:
    client = make_client(limits={"max_heavy_per_client": 1})
    sid = new_session(client)["id"]
    assert step(client, sid, co2_like(6).tolist()).status_code == 200
    engine = app_context(client.app).engine

    async def scenario() -> None:
        _, held = await engine.forecast_stream(sid, None, 3, caller="a")  # a's one slot
        with pytest.raises(Overloaded):
            await engine.forecast(sid, None, 2, caller="a")
        with pytest.raises(Overloaded):
            await engine.forecast_stream(sid, None, 2, caller="a")
        rows, _ = await engine.forecast(sid, None, 2, caller="b")  # b is not held up by a
        _, other = await engine.forecast_stream(sid, None, 2, caller="b")
        got = [row async for row in other]
        np.testing.assert_allclose(got, rows, rtol=0, atol=1e-9)
        assert len([row async for row in held]) == 3
        await engine.forecast(sid, None, 2, caller="a")  # a's stream ended: its slot is free

    client.portal.call(scenario)
