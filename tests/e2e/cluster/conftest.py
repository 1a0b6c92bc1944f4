"""A real local Redis Cluster (3 masters, 1 replica each) from the dev extra's redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.launch import RedisClusterNodes
from tests.e2e.redis_server import require_redis_binary


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(require_redis_binary(), tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def cluster_env(cluster: RedisClusterNodes, prefix: str, **extra: str) -> dict[str, str]:
    """Replica settings: the URL of one node (any will do); the cluster is detected."""
    return {
        "SEQSERVE_STATE_STORE": "redis",
        "SEQSERVE_REDIS_URL": cluster.url,
        "SEQSERVE_REDIS_PREFIX": prefix,
        **extra,
    }
