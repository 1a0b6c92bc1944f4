"""`seqserve export`: PyTorch forecaster -> `<repo>/<name>/<version>/{model.onnx, model.json}`.

The graph uses the native ONNX `LSTM`/`GRU` op (torch's TorchScript exporter, `dynamo=False`:
the dynamo exporter bakes example dims into output shapes), opset 17, inputs `x, h0[, c0]`,
outputs `y, hn[, cn]`, dynamic batch and time axes. A file is only accepted after it agrees with
PyTorch and the NumPy reference (`model.verify`); until then it lives under a temporary name.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from seqserve.model import lstm
from seqserve.model.verify import Runner, verify_model_dir
from seqserve.service.runtime.manifest import (
    Feature,
    Manifest,
    Output,
    Signature,
    StatePair,
    TensorSpec,
)
from torch import nn

from seqserve.importer.versions import install, next_version

OPSET = 17
STATE_NAMES = {"lstm": (("h0", "hn"), ("c0", "cn")), "gru": (("h0", "hn"),)}


def _names(cell: str) -> tuple[list[str], list[str]]:
    pairs = STATE_NAMES[cell]
    return ["x"] + [p[0] for p in pairs], ["y"] + [p[1] for p in pairs]


def onnx_bytes(model: nn.Module, opset: int = OPSET) -> bytes:
    """Serialize a forecaster; the example has batch 2 and time 3 so no dim looks constant."""
    inputs, outputs = _names(model.cell)
    example = (torch.zeros(2, 3, model.n_features), *model.zero_state(2))
    return trace_to_onnx(model, example, inputs, outputs, opset)


def trace_to_onnx(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    inputs: Sequence[str],
    outputs: Sequence[str],
    opset: int = OPSET,
) -> bytes:
    """ONNX bytes of `model(x, *states) -> (y, *states)`: x/y `[batch, time, .]`, states
    `[L, batch, H]`, with the native recurrent ops of the legacy exporter."""
    dynamic = {inputs[0]: {0: "batch", 1: "time"}, outputs[0]: {0: "batch", 1: "time"}}
    dynamic |= {name: {1: "batch"} for name in [*inputs[1:], *outputs[1:]]}
    buf = io.BytesIO()
    model.eval()
    with warnings.catch_warnings():
        # The legacy exporter is deprecated (it is the one that emits the native LSTM op); it
        # warns that batch-first RNNs exported with batch != 1 depend on the dynamic batch axis
        # (which we declare), and its tracer warns about nn.LSTM's Python-side size checks.
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", "Exporting a model to ONNX with a batch_size", UserWarning
        )
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            example,
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    return buf.getvalue()


def signature(model: nn.Module) -> Signature:
    inputs, outputs = _names(model.cell)
    return Signature(
        data_input=TensorSpec(name="x", shape=["batch", "time", model.n_features]),
        data_output=TensorSpec(name="y", shape=["batch", "time", model.n_outputs]),
        state=[
            StatePair(input=i, output=o, layers=model.num_layers, size=model.hidden_size)
            for i, o in zip(inputs[1:], outputs[1:], strict=True)
        ],
    )


def torch_runner(model: nn.Module) -> Runner:
    """The PyTorch module as a verify runner (float32, like the exported graph)."""

    @torch.no_grad()
    def run(x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        y, *new = model(torch.from_numpy(x), *(torch.from_numpy(s) for s in states))
        return y.numpy(), [s.numpy() for s in new]

    return run


def write_model(
    repo: str | Path,
    name: str,
    version: str | None,
    model: nn.Module,
    features: Sequence[Feature],
    outputs: Sequence[Output],
    *,
    description: str = "",
    training: dict[str, object] | None = None,
    metrics: dict[str, object] | None = None,
    check_times: Sequence[int] = (1, 50, 1000),
    force: bool = False,
) -> Path:
    """Export, verify and install `model` as `<repo>/<name>/<version>/`; returns that dir.

    `version` None means one above the highest present; an existing version is refused
    (`VersionExists`) unless `force`. The files are written to a temporary directory first and
    only moved into place once `verify_model_dir` (with PyTorch as an extra runner) passes.
    """
    version = version or next_version(repo, name)
    data = onnx_bytes(model)
    manifest = Manifest(
        name=name,
        version=version,
        description=description,
        cell=model.cell,
        sha256=hashlib.sha256(data).hexdigest(),
        opset=OPSET,
        signature=signature(model),
        features=list(features),
        outputs=list(outputs),
        training=training or {},
        metrics=metrics or {},
    )

    def write(staged: Path) -> None:
        (staged / manifest.onnx_file).write_bytes(data)
        (staged / "model.json").write_text(manifest_json(manifest))
        verify_model_dir(staged, torch_runner=torch_runner(model), times=check_times)

    return install(repo, name, version, write, force=force)


def manifest_json(manifest: Manifest) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, object]]:
    """A trained forecaster and the rest of its checkpoint (features, training, metrics)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = lstm.build(**ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


def export_checkpoint(
    checkpoint: str | Path,
    repo: str | Path,
    name: str = "co2",
    version: str | None = None,
    *,
    force: bool = False,
) -> Path:
    """Export a `seqserve train` checkpoint into a model repository (default: a new version)."""
    model, ckpt = load_checkpoint(checkpoint)
    return write_model(
        repo,
        name,
        version,
        model,
        [Feature(**f) for f in ckpt["features"]],
        [Output(**o) for o in ckpt["outputs"]],
        description="Weekly Mauna Loa CO2 (ppm): predicts next week's value from the stream so far",
        training=ckpt["training"],
        metrics=ckpt["metrics"],
        force=force,
    )


def export_random_model(
    out_dir: str | Path,
    cell: str = "lstm",
    n_features: int = 1,
    hidden_size: int = 16,
    num_layers: int = 1,
    n_outputs: int | None = None,
    name: str | None = None,
    version: str = "1",
    seed: int = 0,
    features: Sequence[Feature] | None = None,
    outputs: Sequence[Output] | None = None,
    check_times: Sequence[int] = (1, 50),
) -> Path:
    """A randomly initialised, verified model at `<out_dir>/<name>/<version>/` (for tests).

    Defaults: features `f0..` unscaled and undifferenced; `n_outputs` = `n_features`, with
    output j predicting feature j (so the model is forecastable); otherwise outputs are plain
    regression channels `y0..` with no feature mapping. `name` defaults to `random-<cell>`.
    """
    n_outputs = n_features if n_outputs is None else n_outputs
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
        torch.manual_seed(seed)
        model = lstm.build(cell, n_features, hidden_size, num_layers, n_outputs)
    if features is None:
        features = [Feature(name=f"f{k}") for k in range(n_features)]
    if outputs is None:
        mapped = n_outputs == n_features
        outputs = [Output(name=f"y{j}", feature=j if mapped else None) for j in range(n_outputs)]
    return write_model(
        out_dir,
        name or f"random-{cell}",
        version,
        model,
        features,
        outputs,
        description=f"randomly initialised {cell.upper()} (seed {seed}), for tests",
        training={"random_init_seed": seed},
        check_times=check_times,
    )
