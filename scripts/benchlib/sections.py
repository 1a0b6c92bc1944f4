"""The benchmark's sections over one set of servers; each returns plain, JSON-ready data."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from launch import ServerProcess, free_port

from benchlib import floor, grpcload, history, path, peers, predict, rss, wrk, wsload
from benchlib.client import Client
from benchlib.load import Target, grpc_point, http_point, rss_over_http, ws_point

SCRIPTS = Path(__file__).resolve().parents[1]
MODEL = "co2"
IDLE_TTL_S = 7200.0
EXTRAS = ("bench_v2", "bench_redis")


def _bundled_repository() -> Path:
    from seqserve.service.settings import DEFAULT_REPOSITORY

    return DEFAULT_REPOSITORY


def _random_repository() -> Path:
    """An equivalent random co2 model (1 feature, hidden 64, 1 layer) in a temp repository."""
    from seqserve.model.export import export_random_model

    root = Path(tempfile.mkdtemp(prefix="bench-repo-"))
    export_random_model(root, cell="lstm", n_features=1, hidden_size=64, num_layers=1, name=MODEL)
    return root


def _grpc_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("grpc", "tritonclient"))


class Bench:
    def __init__(self, args: argparse.Namespace, results: dict[str, Any]) -> None:
        self.args = args
        self.results = results
        self.log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
        self.targets: dict[str, Target] = {}
        self.repository: Path = args.repository or _bundled_repository()
        self.mosec_python: Path | None = None

    def _note(self, text: str) -> None:
        self.results.setdefault("notes", []).append(text)
        print(f"   {text}", flush=True)

    def prepare(self) -> None:
        if not (self.repository / MODEL).is_dir():
            self.repository = _random_repository()
            self._note(f"no {MODEL} model in the repository: using a random equivalent")
        self.results["meta"]["repository"] = str(self.repository)
        print(f"server logs in {self.log_dir}", flush=True)
        if "peers" not in self.args.skip and "http" not in self.args.skip:
            self._prepare_peers()

    def _prepare_peers(self) -> None:
        """Mosec's venv (built once, under build/peers/); a failed install is a reason."""
        print(f"== peers: Mosec's venv in {peers.MOSEC_VENV}", flush=True)
        peer = peers.mosec_venv()
        if peer.python is None:
            self.results["peers"] = {"mosec": {"status": "not measured", "reason": peer.reason}}
            self._note(f"Mosec not measured: {peer.reason}")
        else:
            self.mosec_python = peer.python
            self.results["peers"] = {
                "mosec": {"status": "ok", "versions": peer.versions, "max_batch": 16}
            }
            print(f"   {peer.versions}", flush=True)

    def _onnx(self) -> Path:
        version = max((p for p in (self.repository / MODEL).iterdir() if p.name.isdigit()),
                      key=lambda p: int(p.name))  # fmt: skip
        return version / "model.onnx"

    # -- sections ---------------------------------------------------------------------------

    def floor(self) -> list[dict[str, Any]]:
        out = []
        for batch in (1, 64, 1024):
            rounds = floor.ort_step_rounds(self._onnx(), batch, min(self.args.duration, 4), 7)
            s, best = statistics.median(rounds), min(rounds)
            out.append(
                {"batch": batch, "us": s * 1e6, "best_us": best * 1e6, "steps_per_s": batch / s}
            )
            print(f"   batch {batch}: {s * 1e6:.1f} µs/call (best {best * 1e6:.1f})", flush=True)
        return out

    def cpu(self) -> dict[str, dict[str, list[dict[str, float]]]]:
        """Server CPU per v1 step in process (scripts/bench_path.py), seqserve and the empty
        endpoint taking turns, at the streams issue 13's goals name."""
        steps = 3000 if self.args.quick else 20_000
        env = {"SEQSERVE_MODEL_REPOSITORY": str(self.repository)}
        out = path.rounds([16, 64], steps, self.args.repeats, env)
        for name, points in out.items():
            for n, runs in points.items():
                cpu = statistics.median(r["cpu_us"] for r in runs)
                print(f"   {name:8} {n:>3} streams: {cpu:.1f} µs CPU/step", flush=True)
        return out

    def predict(self) -> dict[str, Any]:
        """Stateless binary V2 predict of [64, 100, F] against in-process ONNX Runtime."""
        url = self.targets["seqserve"].server.url
        seconds = min(self.args.duration, 4.0)
        out = predict.measure(url, MODEL, self._onnx().parent, seconds,
                              self.args.repeats)  # fmt: skip
        for r in out["rounds"]:
            print(f"   V2 predict {r['http']:.1f}/s vs in process {r['ort']:.1f}/s", flush=True)
        return out

    def start_servers(self) -> None:
        env = dict(kv.split("=", 1) for kv in self.args.server_env)
        if "grpc" not in self.args.skip and _grpc_installed():
            env.setdefault("SEQSERVE_GRPC_PORT", str(free_port()))
        seq = ServerProcess.seqserve(self.repository, self.log_dir, **env)
        servers = {
            "empty": ServerProcess.script("empty", SCRIPTS / "empty_app.py", self.log_dir),
            "seqserve": seq,
        }
        if "naive" not in self.args.skip:
            naive = ServerProcess.script("naive", SCRIPTS / "naive_server.py", self.log_dir)
            naive.env["OMP_NUM_THREADS"] = "1"  # read when torch loads: every thread, one
            servers["naive"] = naive
        if self.mosec_python is not None:
            servers["mosec"] = peers.mosec_server(
                self.mosec_python, self.repository, MODEL, self.log_dir
            )
        n = max([*self.args.streams, *self.args.ws_streams, *self.args.naive_streams])
        for name, server in servers.items():
            try:
                server.start(ready_path="/" if name == "mosec" else "/readyz")
            except RuntimeError as exc:  # a peer that fails to start is reported, not fatal
                if name != "mosec":
                    raise
                self.results["peers"]["mosec"] = {"status": "not measured", "reason": str(exc)}
                self._note(f"Mosec not measured: it did not start ({server.log_path})")
                server.stop()
                continue
            target = Target(name, server, has_metrics=name == "seqserve")
            if name == "mosec":  # the worker's dict starts a session on its first step
                target.ids = [f"s{k}" for k in range(n)]
                target.path, target.body = peers.MOSEC_PATH, peers.MOSEC_BODY
            elif name == "empty":
                target.ids = [f"s{k}" for k in range(n)]
            else:
                client = Client(server.url)
                extra = {"idle_ttl_s": IDLE_TTL_S} if name == "seqserve" else {}
                target.ids = client.create_sessions(n, MODEL, **extra)
                client.close()
            self.targets[name] = target

    def stop_servers(self) -> None:
        for target in self.targets.values():
            target.server.stop()
        self.targets.clear()

    def http(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        a = self.args
        out: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in self.targets}
        for target in self.targets.values():  # warm-up, not recorded
            wrk.run(target.server.url, target.ids, min(64, len(target.ids)), 1, target.path,
                    body=target.body)  # fmt: skip
        only = {"naive": a.naive_streams, "mosec": getattr(a, "peer_streams", [16, 64])}
        for r in range(a.repeats):
            for streams in a.streams:
                for name, target in self.targets.items():
                    if name in only and streams not in only[name]:
                        continue
                    p = http_point(target, streams, a.duration)
                    out[name].setdefault(str(streams), []).append(p)
                    batch = f", batch {p['batch_mean']:.1f}" if p.get("batch_mean") else ""
                    print(
                        f"   round {r + 1} {name:8} {streams:3} streams: {p['rps']:8,.0f}/s "
                        f"p50 {p['p50_ms']:.2f} p99 {p['p99_ms']:.2f} ms{batch} "
                        f"(cores: server {p['server_cores']:.2f}, wrk {p['client_cores']:.2f}, "
                        f"others {p['other_cores']:.2f})",
                        flush=True,
                    )
                    if p["errors"] or p["non2xx"]:
                        self._note(f"{name} {streams} streams: {p['errors']} socket errors, "
                                   f"{p['non2xx']} non-2xx answers")  # fmt: skip
        return out

    def ws(self) -> dict[str, Any]:
        target = self.targets["seqserve"]
        reason = wsload.check(target.server.url, target.ids[0])
        if reason is not None:
            print(f"   WebSocket pending: {reason}", flush=True)
            return {"status": "pending", "reason": reason}
        points: dict[str, list[dict[str, Any]]] = {}
        for r in range(self.args.repeats):
            for streams in self.args.ws_streams:
                p = ws_point(target, streams, self.args.duration, self.args.ws_procs)
                points.setdefault(str(streams), []).append(p)
                print(
                    f"   round {r + 1} ws {streams:3} streams: {p['rps']:8,.0f}/s p50 "
                    f"{p['p50_ms']:.2f} p99 {p['p99_ms']:.2f} ms, batch "
                    f"{p.get('batch_mean') or 0:.1f} (cores: server {p['server_cores']:.2f}, "
                    f"{p['client_processes']} clients {p['client_cores']:.2f}, others "
                    f"{p['other_cores']:.2f}), "
                    f"{p['errors']} errors",
                    flush=True,
                )
        return {"status": "ok", "seqserve": points}

    def grpc(self) -> dict[str, Any]:
        """Triton's gRPC streaming (one ModelStreamInfer stream per client process)."""
        target = self.targets["seqserve"]
        if "SEQSERVE_GRPC_PORT" not in target.server.env:
            print("   gRPC pending: the grpc extra is not installed", flush=True)
            return {"status": "pending", "reason": 'pip install "seqserve[grpc]"'}
        address = "127.0.0.1:" + target.server.env["SEQSERVE_GRPC_PORT"]
        reason = grpcload.check(address, MODEL)
        if reason is not None:
            print(f"   gRPC pending: {reason}", flush=True)
            return {"status": "pending", "reason": reason}
        client = getattr(self.args, "grpc_client", "raw")
        points: dict[str, list[dict[str, Any]]] = {}
        for r in range(self.args.repeats):
            for streams in self.args.grpc_streams:
                p = grpc_point(target, streams, self.args.duration, self.args.ws_procs, client)
                points.setdefault(str(streams), []).append(p)
                print(
                    f"   round {r + 1} grpc {streams:3} streams: {p['rps']:8,.0f}/s p50 "
                    f"{p['p50_ms']:.2f} p99 {p['p99_ms']:.2f} ms, batch "
                    f"{p.get('batch_mean') or 0:.1f} (cores: server {p['server_cores']:.2f}, "
                    f"{p['client_processes']} clients {p['client_cores']:.2f}), "
                    f"{p['errors']} errors",
                    flush=True,
                )
        return {"status": "ok", "client": client, "seqserve": points}

    def history(self) -> list[dict[str, Any]]:
        url = self.targets["seqserve"].server.url
        budget = 2.0 if self.args.quick else 5.0
        rows = history.measure(url, self.args.history, self.args.samples, budget, MODEL)
        for row in rows:
            print(
                f"   history {row['history']:6}: step p50 {row['stateful_p50_ms']:.2f} ms, "
                f"recompute p50 {row['stateless_p50_ms']:.2f} ms",
                flush=True,
            )
        return rows

    def rss(self) -> dict[str, Any]:
        a, out = self.args, {}
        out["seqserve"] = rss.measure("seqserve", a.sessions, self.repository)
        print(f"   in process: {out['seqserve']['per_session']:.0f} B/session", flush=True)
        out["seqserve_trace"] = rss.measure("seqserve-trace", min(a.sessions, 100_000))
        if "naive" not in a.skip:
            out["naive"] = rss.measure("naive", a.sessions)
            print(f"   naive: {out['naive']['per_session']:.0f} B/session", flush=True)
        env = {
            "SEQSERVE_LIMITS__MAX_SESSIONS": str(4_000_000),
            "SEQSERVE_LIMITS__MAX_STATE_BYTES": str(1 << 40),
        }
        server = ServerProcess.seqserve(self.repository, self.log_dir, **env).start()
        try:
            client = Client(server.url)
            client.create_sessions(2000, MODEL)  # warm-up: slab, allocator, caches
            client.close()
            out["http"] = rss_over_http(Target("seqserve", server), a.http_rss_seconds)
        finally:
            server.stop()
        per = out["http"]["per_session"]
        print(f"   over HTTP: {out['http']['sessions']:,} sessions, {per or 0:.0f} B/session")
        return out

    def extras(self) -> dict[str, Any]:
        """Other helpers' benchmarks (V2 protocol, Redis store), when present in scripts/."""
        out: dict[str, Any] = {}
        for name in EXTRAS:
            path = SCRIPTS / f"{name}.py"
            if not path.is_file():
                out[name] = {"status": "absent"}
                continue
            print(f"   {name}", flush=True)
            try:
                out[name] = self._extra(name, path)
            except Exception as exc:  # an optional section must not sink the run
                out[name] = {"status": f"failed: {type(exc).__name__}: {exc}"}
            print(f"   {name}: {out[name]['status']}", flush=True)
        return out

    def _extra(self, name: str, path: Path) -> dict[str, Any]:
        """bench_v2.compare(url, streams, seconds) and bench_redis.compare(streams, seconds,
        repository) in process; anything else (or without `compare`) as a subprocess."""
        module = importlib.import_module(name)
        compare = getattr(module, "compare", None)
        result: Any = None
        if name == "bench_v2" and compare is not None:
            streams = [64] if self.args.quick else [16, 64]
            result = compare(self.targets["seqserve"].server.url, streams, self.args.duration)
        elif name == "bench_redis" and compare is not None:
            result = compare(64, self.args.duration, self.repository)
        if isinstance(result, list):
            return {"status": "ok", "rows": result}
        if isinstance(result, dict):
            rows = result.pop("rows", [])
            return {"status": "ok", "rows": rows, "summary": result}
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              timeout=900)  # fmt: skip
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        return {"status": status, "output": (proc.stdout + proc.stderr)[-6000:]}
