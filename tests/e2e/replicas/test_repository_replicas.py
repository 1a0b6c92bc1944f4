"""Replicas over one Redis and one repository folder: a session on a version that another
replica has not loaded yet answers 503 + Retry-After there, never another version's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scripts.launch import RedisServer
from tests.e2e.conftest import StartServer
from tests.e2e.replicas.conftest import redis_env
from tests.e2e.repository_support import (
    TOL,
    create,
    load,
    reference,
    repository,
    series,
    stage,
    step,
)

pytestmark = pytest.mark.e2e


def test_a_replica_without_the_version_answers_503(
    shared_redis: RedisServer, start_server: StartServer, tmp_path: Path
) -> None:
    root = repository(tmp_path, "1")  # the shared volume
    env = redis_env(shared_redis, "repo-replicas")
    a, b = start_server(root, **env), start_server(root, **env)
    stage(root, "2")
    assert load(a).status_code == 200  # only replica A loads version 2
    raw = series(10, seed=5)
    session = create(a)
    assert session["version"] == "2"
    first = step(a, session["id"], raw[:4], 0)
    assert first.status_code == 200, first.text

    refused = step(b, session["id"], raw[4:], 4)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["detail"] == "model rnn version 2 is not loaded on this server yet"

    assert load(b).status_code == 200  # the retry, once B has loaded it, continues the stream
    rest = step(b, session["id"], raw[4:], 4)
    assert rest.status_code == 200, rest.text
    outputs = first.json()["outputs"] + rest.json()["outputs"]
    np.testing.assert_allclose(outputs, reference(root, "2", raw), atol=TOL)
