"""Redis is the optional `redis` extra: without it the server runs on the memory store, and
state_store=redis stops with a message naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A None entry in sys.modules makes `import redis` fail as if the package were not installed.
WITHOUT_REDIS = """
import sys
sys.modules["redis"] = None
from prometheus_client import CollectorRegistry
from seqserve.service.app import create_app
from seqserve.service.metrics import Metrics
from seqserve.service.settings import Settings
from seqserve.service.state.factory import MissingExtra, open_store

repo = sys.argv[1]
create_app(Settings(model_repository=repo))
memory = open_store(Settings(model_repository=repo), Metrics(CollectorRegistry()))
print(type(memory).__name__)
redis = Settings(model_repository=repo, state_store="redis", redis_url="redis://127.0.0.1:1/0")
try:
    open_store(redis, Metrics(CollectorRegistry()))
except MissingExtra as exc:
    print(exc)
"""


def test_without_the_redis_client_only_the_redis_store_is_refused(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS, str(repo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    memory, refusal = proc.stdout.splitlines()
    assert memory == "MemoryStateStore"
    assert refusal == 'state_store=redis needs the Redis client: pip install "seqserve[redis]"'
