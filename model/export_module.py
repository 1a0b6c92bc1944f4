"""`seqserve export --module`: a user's own recurrent `nn.Module` -> a verified model version.

The module (see `model.module_contract`) is traced with the native ONNX `LSTM`/`GRU` ops, ONNX
Runtime is compared with PyTorch on random inputs up to 200 steps, and the file goes through the
importer's own path with explicit roles: it proves the model streamable, and before the version
is moved into place the NumPy reference checks it too where it can read the graph (a recurrent
stack and one linear head); other architectures get the PyTorch comparison only.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from seqserve.model.export import torch_runner, trace_to_onnx
from seqserve.model.module_contract import (
    Flat,
    ModuleRefused,
    default_features,
    load_module,
    parse_args,
    probe,
)
from seqserve.model.onnx_graph import _PASSTHROUGH, GraphReader, UnsupportedGraph
from seqserve.model.verify import verify_model_dir

from seqserve.importer.build import Imported, import_model, load_features

BATCHES, TIMES, TOL = (1, 7), (1, 50, 200), 1e-5
_RECURRENT = {"LSTM", "GRU", "RNN"}


@dataclass
class Exported:
    imported: Imported
    max_abs_err: float  # ONNX Runtime vs PyTorch
    reference: bool  # the NumPy reference checked it too
    notes: list[str] = field(default_factory=list)


def state_names(count: int) -> tuple[list[str], list[str]]:
    """`h0, c0 -> hn, cn` as in our own exports; `s0_0.. -> s0_n..` beyond two states."""
    stems = ["h", "c"] if count <= 2 else [f"s{k}_" for k in range(count)]
    return [f"{s}0" for s in stems[:count]], [f"{s}n" for s in stems[:count]]


def compare_with_torch(
    data: bytes, flat: Flat, shapes: list[tuple[int, int]], n_feat: int
) -> float:
    """The largest |ONNX Runtime - PyTorch| over a grid of batch x time from random states."""
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    run = torch_runner(flat)
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch in BATCHES:
        for time in TIMES:
            x = rng.standard_normal((batch, time, n_feat)).astype(np.float32)
            states = [rng.uniform(-1, 1, (n, batch, h)).astype(np.float32) for n, h in shapes]
            got = sess.run(None, dict(zip(names, [x, *states], strict=True)))
            y, new = run(x, states)
            for a, b in zip(got, [y, *new], strict=True):
                worst = max(worst, float(np.abs(a - b).max(initial=0.0)))
    return worst


def reference_gap(model: onnx.ModelProto, output: str = "y") -> str | None:
    """Why the NumPy reference cannot check this graph (None: a recurrent stack + linear head)."""
    reader = GraphReader(model.graph)
    node = reader.producer.get(output)
    while node is not None and node.op_type in _PASSTHROUGH:
        node = reader.producer.get(node.input[0])
    if node is not None and node.op_type in _RECURRENT:
        return f"output {output!r} is the recurrent layer's own, with no linear head"
    if node is not None and node.op_type == "Add":  # MatMul + bias
        node = next((reader.producer[i] for i in node.input if i in reader.producer), None)
        node = node if node is not None and node.op_type == "MatMul" else None
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        return f"output {output!r} is not one linear map of the last recurrent layer's output"
    if reader.upstream_recurrent(node.input[0]) is None:
        return f"more than one layer lies between the recurrence and output {output!r}"
    try:
        reader.read()
    except UnsupportedGraph as exc:
        return str(exc)
    return None


def export_module(
    spec: str,
    repository: str | Path,
    name: str,
    version: str | None = None,
    *,
    weights: str | None = None,
    module_args: Sequence[str] = (),
    features: int | str | Path | None = None,
    description: str = "",
    force: bool = False,
) -> Exported:
    """Export the module from the factory at `spec` into `<repository>/<name>/<version>/`.

    `features` is the input feature count or the importer's features file (JSON/TOML).
    Raises `ModuleRefused`, the importer's `ImportRefused`, `VersionExists` or
    `VerificationError`; nothing is written then.
    """
    module = load_module(spec, parse_args(module_args), weights)
    features_file = None
    if features is None:
        n_feat = default_features(module)
    elif isinstance(features, int):
        n_feat = features
    else:
        features_file = features
        n_feat = len(load_features(features)[0])
    flat, shapes, _ = probe(module, n_feat)
    inputs, outputs = state_names(len(shapes))
    example = (torch.zeros(2, 3, n_feat), *(torch.zeros(n, 2, h) for n, h in shapes))
    try:
        data = trace_to_onnx(flat, example, ["x", *inputs], ["y", *outputs])
    except Exception as exc:  # the exporter raises many types for what it cannot trace
        raise ModuleRefused(f"torch.onnx.export failed: {exc}") from exc
    graph = onnx.load_from_string(data)
    ops = {n.op_type for n in graph.graph.node}
    if not ops & _RECURRENT:
        raise ModuleRefused(
            "the traced graph has no native recurrent op (LSTM/GRU): a Python loop over time "
            "is unrolled for the example's length; use nn.LSTM / nn.GRU"
        )
    err = compare_with_torch(data, flat, shapes, n_feat)
    if not err <= TOL:
        raise ModuleRefused(f"ONNX Runtime disagrees with PyTorch: max abs err {err:.3e} > {TOL}")
    gap = reference_gap(graph)
    notes = [] if gap is None else [f"NumPy reference not applicable ({gap}): PyTorch only"]

    def check(staged: Path) -> None:
        if gap is None:  # a stack + linear head: the full `seqserve verify`, PyTorch included
            verify_model_dir(staged, torch_runner=torch_runner(flat), batches=BATCHES)

    training: dict[str, object] = {"exported_from": spec, "module_args": list(module_args)}
    if weights is not None:
        training |= {
            "weights": Path(weights).name,
            "weights_sha256": hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
        }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(data)
        imported = import_model(
            path,
            repository,
            name,
            version,
            data_inputs=["x"],
            data_output="y",
            states=list(zip(inputs, outputs, strict=True)),
            layout="batch_major",
            features_file=features_file,
            description=description or f"{spec}, exported by seqserve export --module",
            training=training,
            check=check,
            force=force,
        )
    return Exported(imported, err, gap is None, notes)
