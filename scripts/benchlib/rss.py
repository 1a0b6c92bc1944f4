"""RSS per idle session, measured in a fresh process (`python -m benchlib.rss KIND N`).

seqserve: the real `Engine` over the real `MemoryStateStore` (built by the app factory's
`build_engine`), creating N sessions through `Engine.create_session`, the path behind
POST /v1/sessions: session metadata, id, slab rows, dict entries all included.
seqserve-trace: the same with tracemalloc on, for where the bytes go (allocated, not RSS).
naive: the tutorial server's own per-session objects (a uuid4 string key, an `(h, c)` pair of
torch tensors, a step counter), the same N times.
RSS is read (psutil) after a warm-up and a `gc.collect()`, before and after creating them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

MARK = "RSS-JSON "
WARMUP = 2000


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def probe_seqserve(n: int, repository: str | None, trace: bool = False) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry
    from seqserve.service.app import build_engine
    from seqserve.service.metrics import Metrics
    from seqserve.service.settings import LimitSettings, Settings

    extra = {"model_repository": Path(repository)} if repository else {}
    limits = LimitSettings(max_sessions=n + 2 * WARMUP, max_state_bytes=1 << 42)
    settings = Settings(limits=limits, **extra)
    engine = build_engine(settings, Metrics(CollectorRegistry()))
    layout = engine.registry.get("co2").layout

    async def create(k: int) -> list[str]:
        return [(await engine.create_session(None, "co2")).id for _ in range(k)]

    async def run() -> tuple[int, int]:
        for sid in await create(WARMUP):
            await engine.delete(sid, None)
        await create(WARMUP)
        before = _rss()
        if trace:
            tracemalloc.start()
        await create(n)
        return before, _rss()

    before, after = asyncio.run(run())
    sites = _top_sites(n) if trace else []
    engine.close()
    return {
        "sessions": n,
        "rss_before": before,
        "rss_after": after,
        "per_session": (after - before) / n,
        "state_bytes": layout.nbytes,
        "allocated_by_site": sites,
    }


def _top_sites(n: int, top: int = 8) -> list[dict[str, Any]]:
    """Bytes allocated (not necessarily resident) per session, by source line (tracemalloc)."""
    stats = tracemalloc.take_snapshot().statistics("lineno")
    tracemalloc.stop()
    root = str(Path(__file__).resolve().parents[2])
    out = []
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.removeprefix(root + "/")
        out.append({"site": f"{where}:{frame.lineno}", "bytes_per_session": stat.size / n})
    return out


def probe_naive(n: int) -> dict[str, Any]:
    import uuid

    import torch
    from naive_server import new_state  # scripts/ is the probe's working directory

    torch.set_num_threads(1)
    sessions, steps = {}, {}

    def create(k: int) -> None:
        for _ in range(k):
            sid = str(uuid.uuid4())
            sessions[sid] = new_state()
            steps[sid] = 0

    create(WARMUP)
    before = _rss()
    create(n)
    after = _rss()
    return {
        "sessions": n,
        "rss_before": before,
        "rss_after": after,
        "per_session": (after - before) / n,
    }


def measure(kind: str, n: int, repository: Path | None = None) -> dict[str, Any]:
    """Run one probe in a fresh interpreter and return its figures."""
    # `python -m` imports from its working directory: scripts/, where benchlib lives
    scripts = Path(__file__).resolve().parents[1]
    argv = [sys.executable, "-m", "benchlib.rss", kind, str(n)]
    if repository is not None:
        argv.append(str(repository.resolve()))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=scripts, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"RSS probe {kind} failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line[len(MARK) :])
    return result


def main() -> None:
    kind, n = sys.argv[1], int(sys.argv[2])
    repository = sys.argv[3] if len(sys.argv) > 3 else None
    if kind == "naive":
        result = probe_naive(n)
    else:
        result = probe_seqserve(n, repository, trace=kind == "seqserve-trace")
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
