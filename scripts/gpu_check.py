"""GPU check: the shipped model on ONNX Runtime's CUDA provider against its CPU run (outputs and
new state, batch sizes 1-256), then per-call timings for both. Without CUDA it runs CPU-only (the
"GPU" side falls back to CPU, as the server would) so the script itself is exercised anywhere.

    bash scripts/gpu_check.sh [--record] [--require-gpu] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from seqserve.service.runtime.onnx_model import OnnxModel
from seqserve.service.settings import DEFAULT_REPOSITORY, OrtSettings

sys.path.insert(0, str(Path(__file__).parent))
from benchlib import gpu  # noqa: E402

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOLERANCE = 1e-4  # float32 on cuDNN vs MLAS: different summation orders
DOCS = Path(__file__).parents[1] / "docs"


def _inputs(model: OnnxModel, batch: int, steps: int, seed: int) -> tuple[Any, list[Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, model.manifest.n_features)).astype(np.float32)
    states = [
        rng.normal(scale=0.5, size=(layers, batch, size)).astype(np.float32)
        for layers, size in model.state_shapes
    ]
    return x, states


def _time(model: OnnxModel, x: Any, states: list[Any], rounds: int) -> float:
    """Median seconds per call over `rounds` calls, after 3 warm-up calls."""
    for _ in range(3):
        model.run(x, states)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        model.run(x, states)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--record",
        action="store_true",
        help="write docs/gpu_check.json and the GPU section of docs/benchmarks.md",
    )
    parser.add_argument("--require-gpu", action="store_true", help="fail without CUDA")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    args = parser.parse_args()

    directory = next(p for p in sorted(args.repository.glob("*/*")) if p.is_dir())
    cpu = OnnxModel.load(directory, threads=1, options=OrtSettings(providers=[CPU]))
    gpu_model = OnnxModel.load(directory, threads=1, options=OrtSettings(providers=[CUDA, CPU]))
    mode = "gpu" if gpu_model.provider == CUDA else "cpu-only"
    print(
        f"gpu_check: available providers {ort.get_available_providers()}; "
        f"the CUDA session runs on {gpu_model.provider} ({mode})"
    )
    if mode != "gpu" and args.require_gpu:
        print("gpu_check: FAILED: --require-gpu and no CUDA provider in use", file=sys.stderr)
        return 1

    worst, rows = 0.0, []
    for batch in BATCHES:
        for steps in (1, 16):  # one timestep (the step path) and a chunk
            x, states = _inputs(cpu, batch, steps, seed=batch * 31 + steps)
            want = cpu.run(x, states)
            got = gpu_model.run(x, states)
            for a, b in zip([want[0], *want[1]], [got[0], *got[1]], strict=True):
                worst = max(worst, float(np.max(np.abs(a - b))))
        x, states = _inputs(cpu, batch, 1, seed=batch)
        cpu_s = _time(cpu, x, states, args.rounds)
        gpu_s = _time(gpu_model, x, states, args.rounds)
        rows.append(
            {
                "batch": batch,
                "cpu_us": cpu_s * 1e6,
                "gpu_us": gpu_s * 1e6,
                "cpu_steps_per_s": batch / cpu_s,
                "gpu_steps_per_s": batch / gpu_s,
            }
        )
        print(f"  batch {batch:>3}: CPU {cpu_s * 1e6:9.1f} µs  {mode} {gpu_s * 1e6:9.1f} µs")
    print(f"gpu_check: max |{mode} - CPU| = {worst:.3e} (bound {TOLERANCE:g})")
    if worst > TOLERANCE:
        print("gpu_check: FAILED: outputs disagree with the CPU run", file=sys.stderr)
        return 1

    if args.record:
        device = "CPU fallback (no CUDA provider)"
        if mode == "gpu":
            query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
            device = subprocess.run(query, capture_output=True, text=True).stdout.strip()
        figures = {
            "mode": mode,
            "note": f"the CUDA session ran on {gpu_model.provider}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "device": device,
            "onnxruntime": ort.__version__,
            "model": f"{directory.parent.name}/{directory.name}",
            "max_abs_diff": worst,
            "tolerance": TOLERANCE,
            "rows": rows,
        }
        (DOCS / "gpu_check.json").write_text(json.dumps(figures, indent=1) + "\n")
        gpu.splice(DOCS / "benchmarks.md", DOCS / "gpu_check.json")
        print("gpu_check: wrote docs/gpu_check.json and the GPU section of docs/benchmarks.md")
    print("gpu_check: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
