"""The input checks as a contract of their own: every adapter (v1 schemas, V2, gRPC, imports)
calls them, so they refuse what is out of range even where no schema ran first."""

from __future__ import annotations

import numpy as np
import pytest
from seqserve.service.api.context import app_context
from seqserve.service.checks import check_forecast, check_steps, session_ttls
from seqserve.service.errors import BadInput
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.settings import SessionSettings

from tests.service.conftest import MakeClient

pytestmark = pytest.mark.service


@pytest.fixture
def diffed(make_client: MakeClient) -> LoadedModel:
    client = make_client()
    return app_context(client.app).engine.registry.get("diffed", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("idle", "total"), [(0.0, None), (-0.5, None), (None, 0.0), (None, -0.5), (-0.5, -0.5)]
)
def test_ttls_of_zero_or_below_are_refused(idle: float | None, total: float | None) -> None:
    with pytest.raises(BadInput, match="idle_ttl_s must be in"):
        session_ttls(SessionSettings(), idle, total)


def test_the_smallest_positive_ttls_are_taken() -> None:
    assert session_ttls(SessionSettings(), 0.001, 0.002) == (0.001, 0.002)


@pytest.mark.parametrize("horizon", [0, -1])
def test_a_horizon_below_one_is_refused(diffed: LoadedModel, horizon: int) -> None:
    with pytest.raises(BadInput, match="horizon must be in"):
        check_forecast(diffed, horizon, 8)


@pytest.mark.parametrize("shape", [(3,), (1, 1, 1), (2, 1, 1)])
def test_inputs_other_than_two_dimensional_are_refused(
    diffed: LoadedModel, shape: tuple[int, ...]
) -> None:
    with pytest.raises(BadInput, match=r"inputs must be \[T\]\[1\]"):
        check_steps(diffed, np.zeros(shape), 16)
