"""`seqserve verify`: check a model directory against its manifest and the cell equations.

The checks, in order, each failing with a message that names the cause:
1. `model.json` is a valid manifest and `model.onnx` hashes to its `sha256`;
2. the graph's inputs and outputs (names, dtypes, static dims) agree with the signature;
3. the graph uses the native ONNX `LSTM`/`GRU` op for the manifest's cell, and no Loop/Scan
   (a linear `RNN` node beside it, e.g. a structural filter, is read by the reference too);
4. ONNX Runtime agrees with the NumPy reference (and PyTorch, when given) to `tol` for every
   batch x time in the grid, from random nonzero initial states;
5. stepping one timestep at a time, feeding the state back, equals the whole-sequence run.

Torch-free: a PyTorch comparison is passed in as a plain function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import ValidationError
from seqserve.model.reference import ReferenceModel, UnsupportedGraph
from seqserve.service.runtime.manifest import Manifest, TensorSpec

# (x[B,T,F], states) -> (y, new states), float32 in, any float out.
Runner = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]

BATCHES = (1, 7, 64)
TIMES = (1, 50, 1000)
TOL = 1e-5
_ELEM = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64"}
_OPS = {"lstm": "LSTM", "gru": "GRU"}
_FORBIDDEN = {"Loop", "Scan", "If"}


class VerificationError(Exception):
    """A model directory failed verification; the message names the cause."""


@dataclass
class VerifyReport:
    model_dir: Path
    manifest: Manifest
    max_abs_err: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        worst = max(self.max_abs_err.values(), default=0.0)
        m = self.manifest
        return (
            f"OK {m.name} v{m.version} ({m.cell}, sha256 {m.sha256[:12]}...): "
            f"{len(self.max_abs_err)} comparisons, max abs err {worst:.2e}"
        )


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(model_dir: Path) -> Manifest:
    path = model_dir / "model.json"
    if not path.is_file():
        raise VerificationError(f"no manifest: {path} does not exist")
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as e:
        raise VerificationError(f"model.json is not a valid manifest: {e}") from e


def check_hash(manifest: Manifest, onnx_path: Path) -> None:
    if not onnx_path.is_file():
        raise VerificationError(f"no model file: {onnx_path} does not exist")
    actual = sha256_file(onnx_path)
    if actual != manifest.sha256:
        raise VerificationError(
            f"sha256 mismatch: model.json says {manifest.sha256}, "
            f"{onnx_path.name} hashes to {actual}"
        )


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _check_tensor(kind: str, spec: TensorSpec, value: onnx.ValueInfoProto) -> list[str]:
    problems = []
    dtype = _ELEM.get(value.type.tensor_type.elem_type, str(value.type.tensor_type.elem_type))
    if dtype != spec.dtype:
        problems.append(f"{kind} {spec.name!r}: graph dtype {dtype}, manifest {spec.dtype}")
    dims = _dims(value)
    if len(dims) != len(spec.shape):
        problems.append(f"{kind} {spec.name!r}: graph rank {len(dims)}, manifest {spec.shape}")
        return problems
    for axis, (g, m) in enumerate(zip(dims, spec.shape, strict=True)):
        if isinstance(m, int) and g != m:
            problems.append(f"{kind} {spec.name!r} dim {axis}: graph has {g!r}, manifest says {m}")
        elif isinstance(m, str) and isinstance(g, int):
            problems.append(
                f"{kind} {spec.name!r} dim {axis}: graph fixes it to {g}, manifest says "
                f"dynamic {m!r}"
            )
    return problems


def expected_specs(manifest: Manifest) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The graph inputs and outputs a manifest's signature implies, by name."""
    return manifest.signature.graph_specs()


def check_signature(manifest: Manifest, model: onnx.ModelProto) -> None:
    """Names, dtypes and static dims of the graph's inputs/outputs against the manifest."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    actual = (
        {v.name: v for v in graph.input if v.name not in inits},
        {v.name: v for v in graph.output},
    )
    problems = []
    for kind, want, have in zip(("input", "output"), expected_specs(manifest), actual, strict=True):
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        if missing or extra:
            problems.append(
                f"graph {kind}s {sorted(have)} disagree with the manifest signature "
                f"{sorted(want)} (missing from graph: {missing}, not in manifest: {extra})"
            )
        for name in sorted(set(want) & set(have)):
            problems.extend(_check_tensor(kind, want[name], have[name]))
    if problems:
        raise VerificationError("signature mismatch: " + "; ".join(problems))


def check_ops(manifest: Manifest, model: onnx.ModelProto) -> None:
    ops = {n.op_type for n in model.graph.node}
    want = _OPS[manifest.cell]
    if want not in ops:
        raise VerificationError(
            f"graph has no native ONNX {want} node (cell {manifest.cell!r}); ops: {sorted(ops)}"
        )
    bad = sorted(ops & (_FORBIDDEN | (set(_OPS.values()) - {want})))
    if bad:
        raise VerificationError(f"graph uses {bad}: expected only native {want} recurrence")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if opsets.get("ai.onnx") != manifest.opset:
        raise VerificationError(
            f"opset mismatch: graph imports ai.onnx {opsets.get('ai.onnx')}, "
            f"manifest says {manifest.opset}"
        )


def check_structure(manifest: Manifest, ref: ReferenceModel) -> None:
    sig = manifest.signature
    shapes = dict.fromkeys((p.input for p in sig.state), (None, None)) | ref.state_shapes
    checks = [
        ("cell", ref.cell, manifest.cell),
        ("data input", ref.data_input, sig.data_input.name),
        ("state inputs", sorted(ref.state_inputs), sorted(p.input for p in sig.state)),
        ("features", ref.n_features, manifest.n_features),
        ("outputs", ref.n_outputs, manifest.n_outputs),
        ("layers", [shapes[p.input][0] for p in sig.state], [p.layers for p in sig.state]),
        ("hidden size", [shapes[p.input][1] for p in sig.state], [p.size for p in sig.state]),
    ]
    for what, graph, declared in checks:
        if graph != declared:
            raise VerificationError(f"{what} mismatch: graph has {graph}, manifest says {declared}")


def ort_runner(manifest: Manifest, path: Path, threads: int = 1) -> Runner:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sig = manifest.signature
    out_names = [sig.data_output.name] + [p.output for p in sig.state]

    def run(x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        feed = {sig.data_input.name: x.astype(np.float32)}
        feed |= {p.input: s.astype(np.float32) for p, s in zip(sig.state, states, strict=True)}
        y, *new = sess.run(out_names, feed)
        return y, new

    return run


def random_case(
    rng: np.random.Generator, manifest: Manifest, batch: int, time: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """float32 inputs and random nonzero states (h in (-1, 1); c may exceed 1)."""
    x = rng.standard_normal((batch, time, manifest.n_features)).astype(np.float32)
    states = []
    for k, pair in enumerate(manifest.signature.state):
        scale = 1.0 if k == 0 else 2.0
        s = rng.uniform(-scale, scale, (pair.layers, batch, pair.size))
        states.append(s.astype(np.float32))
    return x, states


def _max_err(
    a: tuple[np.ndarray, list[np.ndarray]], b: tuple[np.ndarray, list[np.ndarray]]
) -> float:
    errs = [np.max(np.abs(np.asarray(a[0], np.float64) - b[0]), initial=0.0)]
    errs += [
        np.max(np.abs(np.asarray(p, np.float64) - q), initial=0.0)
        for p, q in zip(a[1], b[1], strict=True)
    ]
    return float(max(errs))


def stepwise(
    run: Runner, x: np.ndarray, states: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    ys = []
    for t in range(x.shape[1]):
        y, states = run(x[:, t : t + 1], states)
        ys.append(y)
    return np.concatenate(ys, axis=1), states


def compare(
    report: VerifyReport,
    manifest: Manifest,
    runners: dict[str, Runner],
    ref: ReferenceModel,
    batches: Sequence[int],
    times: Sequence[int],
    tol: float,
    seed: int,
) -> None:
    """Every runner against the reference over the grid, and stepwise ORT vs whole ORT."""
    rng = np.random.default_rng(seed)
    order = [ref.state_inputs.index(p.input) for p in manifest.signature.state]
    for batch in batches:
        for time in times:
            x, states = random_case(rng, manifest, batch, time)
            ref_states = [states[order.index(i)] for i in range(len(order))]
            y_ref, s_ref = ref.run(x, ref_states)
            expected = (y_ref, [s_ref[i] for i in order])
            results = {name: run(x, states) for name, run in runners.items()}
            for name, got in results.items():
                err = _max_err(got, expected)
                report.max_abs_err[f"{name} vs reference B={batch} T={time}"] = err
                if not err <= tol:
                    y32, s32 = ref.run(x, ref_states, dtype=np.float32)
                    floor = _max_err((y32, [s32[i] for i in order]), expected)
                    raise VerificationError(
                        f"numerical mismatch: {name} vs NumPy reference, batch {batch} x time "
                        f"{time}: max abs err {err:.3e} > {tol:.0e} (for scale: the reference "
                        f"itself computed in float32 drifts {floor:.1e} from float64 here)"
                    )
            if time == max(times):
                err = _max_err(stepwise(runners["onnxruntime"], x, states), results["onnxruntime"])
                report.max_abs_err[f"onnxruntime stepwise vs whole B={batch} T={time}"] = err
                if not err <= tol:
                    raise VerificationError(
                        f"stepwise mismatch: onnxruntime one step at a time vs whole sequence, "
                        f"batch {batch} x time {time}: max abs err {err:.3e} > {tol:.0e}"
                    )


def verify_model_dir(
    model_dir: str | Path,
    *,
    torch_runner: Runner | None = None,
    batches: Sequence[int] = BATCHES,
    times: Sequence[int] = TIMES,
    tol: float = TOL,
    seed: int = 0,
) -> VerifyReport:
    """Run every check on `<repo>/<name>/<version>/`; raises VerificationError on failure."""
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    onnx_path = model_dir / manifest.onnx_file
    check_hash(manifest, onnx_path)
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises several types for a malformed file
        raise VerificationError(f"{onnx_path.name} is not a valid ONNX model: {e}") from e
    check_signature(manifest, model)
    check_ops(manifest, model)
    try:
        ref = ReferenceModel.from_onnx(model)
    except UnsupportedGraph as e:
        raise VerificationError(f"the NumPy reference cannot read the graph: {e}") from e
    check_structure(manifest, ref)
    runners = {"onnxruntime": ort_runner(manifest, onnx_path)}
    if torch_runner is not None:
        runners["pytorch"] = torch_runner
    report = VerifyReport(model_dir=model_dir, manifest=manifest)
    compare(report, manifest, runners, ref, batches, times, tol, seed)
    return report
