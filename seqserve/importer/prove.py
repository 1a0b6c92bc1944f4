"""Proves a model streamable on random inputs, through the server's own runtime edge.

Fed T steps one at a time (carrying the state) it must equal the same steps fed at once; each
batch row must be independent of the others; and the state must be carried (it changes the
outputs, and the inputs change it).
"""

from __future__ import annotations

import numpy as np

from seqserve.importer.errors import ImportRefused
from seqserve.service.runtime.onnx_model import OnnxModel

Array = np.ndarray
BATCH, STEPS = 3, 6
ATOL, RTOL = 1e-4, 1e-4


def _differs(a: Array, b: Array) -> float:
    """The largest error beyond tolerance (0.0 when `a` and `b` agree)."""
    excess = np.abs(a - b) - (ATOL + RTOL * np.abs(b))
    return float(max(excess.max(initial=0.0), 0.0)) if np.isfinite(a).all() else float("inf")


def prove(model: OnnxModel, seed: int = 0) -> None:
    sig = model.manifest.signature
    layout, y_name = sig.data_layout, sig.data_output.name
    data = [s.name for s in sig.data_inputs]
    rng = np.random.default_rng(seed)
    n_feat = model.manifest.n_features
    x = rng.standard_normal((BATCH, STEPS, n_feat)).astype(np.float32)
    states = [
        rng.uniform(-0.5, 0.5, (layers, BATCH, size)).astype(np.float32)
        for layers, size in model.state_shapes
    ]
    try:
        y, final = model.run(x, states)
    except Exception as exc:  # ORT reports shape errors with several exception types
        raise ImportRefused(
            f"ONNX Runtime cannot run it with data {data} read as {layout}: {exc}"
        ) from exc
    want = (BATCH, STEPS, model.manifest.n_outputs)
    if y.shape != want:
        raise ImportRefused(
            f"output {y_name!r} has shape {list(y.shape)} for {layout} data {data} of shape "
            f"{list(x.shape)}; expected {list(want)} (is the layout right? try --layout)"
        )
    # one step at a time, carrying the state
    carried = states
    for t in range(STEPS):
        y_t, carried = model.run(x[:, t : t + 1], carried)
        err = _differs(y_t[:, 0], y[:, t])
        if err:
            raise ImportRefused(
                f"not streamable: output {y_name!r} at step {t} differs by {err:.3g} when the "
                f"steps of {data} are fed one at a time (carrying the state) instead of at once: "
                "it depends on later steps or the whole sequence (attention, a reduction over "
                "time, a reverse recurrence), or the state does not carry everything"
            )
    for pair, got, ref in zip(sig.state, carried, final, strict=True):
        if err := _differs(got, ref):
            raise ImportRefused(
                f"not streamable: state {pair.input!r} -> {pair.output!r} differs by {err:.3g} "
                "after the steps are fed one at a time instead of at once: it is not the state "
                "the recurrence carries"
            )
    # batch rows are independent
    for b in range(BATCH):
        y_b, _ = model.run(x[b : b + 1], [s[:, b : b + 1] for s in states])
        if err := _differs(y_b[0], y[b]):
            raise ImportRefused(
                f"batch rows are not independent: output {y_name!r} of row {b} differs by "
                f"{err:.3g} when that row is run alone"
            )
    # the state is carried: it changes the outputs, and the inputs change it
    for k, pair in enumerate(sig.state):
        zeroed = [np.zeros_like(s) if j == k else s for j, s in enumerate(states)]
        if not _differs(model.run(x, zeroed)[0], y):
            raise ImportRefused(
                f"state not carried: input {pair.input!r} does not change output {y_name!r}"
            )
    _, other = model.run(x + 1.0, states)
    for pair, got, ref in zip(sig.state, other, final, strict=True):
        if not _differs(got, ref):
            raise ImportRefused(
                f"state not carried: output {pair.output!r} does not change with the data inputs"
            )
