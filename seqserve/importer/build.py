"""`import_model`: detect the roles, prove the model streamable, write a new version."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort
from pydantic import ValidationError

from seqserve.importer.detect import Roles, detect
from seqserve.importer.errors import ImportRefused
from seqserve.importer.graph import Graph
from seqserve.importer.prove import prove
from seqserve.importer.versions import install, next_version
from seqserve.service.errors import ModelLoadError
from seqserve.service.runtime.manifest import (
    Feature,
    Manifest,
    Output,
    Signature,
    StatePair,
    TensorSpec,
)
from seqserve.service.runtime.onnx_model import OnnxModel

_DATA_SHAPE: dict[str, list[int | str]] = {
    "batch_major": ["batch", "time"],
    "time_major": ["time", "batch"],
    "no_time_axis": ["batch"],
}


@dataclass(frozen=True)
class Imported:
    path: Path
    manifest: Manifest


def load_features(path: str | Path) -> tuple[list[Feature], list[Output] | None]:
    """`{"features": [...], "outputs": [...]?}` from a JSON or TOML file (manifest fields)."""
    path = Path(path)
    try:
        text = path.read_text()
        doc = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        features = [Feature.model_validate(f) for f in doc["features"]]
        outputs = doc.get("outputs")
        return features, None if outputs is None else [Output.model_validate(o) for o in outputs]
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ImportRefused(f"features file {path}: {exc}") from exc


def _manifest(
    graph: Graph,
    roles: Roles,
    layout: str,
    data: bytes,
    fields: dict[str, object],
) -> Manifest:
    lead = _DATA_SHAPE[layout]
    specs = [TensorSpec(name=n, shape=[*lead, graph.inputs[n][-1] or 0]) for n in roles.data_inputs]
    n_out = graph.outputs[roles.data_output][-1]
    pairs = []
    for src, out in roles.states:
        dims = graph.inputs[src]
        layers, size = (dims[0], dims[2]) if len(dims) == 3 else (1, dims[1])
        pairs.append(
            StatePair(
                input=src,
                output=out,
                layers=int(layers or 0),
                size=int(size or 0),
                layout="LBH" if len(dims) == 3 else "BH",
            )
        )
    signature = Signature(
        data_input=specs[0],
        more_data_inputs=specs[1:],
        data_output=TensorSpec(name=roles.data_output, shape=[*lead, n_out or 0]),
        state=pairs,
        data_layout=layout,
    )
    try:
        return Manifest.model_validate(
            {
                **fields,
                "cell": roles.cell,
                "sha256": hashlib.sha256(data).hexdigest(),
                "signature": signature,
            }
        )
    except ValidationError as exc:
        raise ImportRefused(f"the manifest would be invalid: {exc}") from exc


def import_model(
    onnx_path: str | Path,
    repository: str | Path,
    name: str,
    version: str | None = None,
    *,
    data_inputs: list[str] | None = None,
    data_output: str | None = None,
    states: list[tuple[str, str]] | None = None,
    layout: str | None = None,
    features_file: str | Path | None = None,
    description: str = "",
    training: dict[str, object] | None = None,
    check: Callable[[Path], None] | None = None,
    force: bool = False,
) -> Imported:
    """Import `onnx_path` as `<repository>/<name>/<version>/` (default: the next version).

    `training` replaces the manifest's provenance; `check(staged_dir)` runs on the written files
    before they are moved into place (it raises to refuse them); `force` replaces `version`.
    """
    onnx_path = Path(onnx_path)
    data = onnx_path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ImportRefused(f"{onnx_path} is not an ONNX model: {exc}") from exc
    graph = Graph(model)
    roles = detect(graph, data_inputs, data_output, states, layout)
    n_feat = sum(int(graph.inputs[n][-1] or 0) for n in roles.data_inputs)
    n_out = int(graph.outputs[roles.data_output][-1] or 0)
    if features_file is not None:
        features, outputs = load_features(features_file)
    else:
        features, outputs = [Feature(name=f"f{k}") for k in range(n_feat)], None
    if outputs is None:
        outputs = [Output(name=f"y{j}") for j in range(n_out)]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    version = version or next_version(repository, name)
    fields: dict[str, object] = {
        "name": name,
        "version": version,
        "description": description or f"imported from {onnx_path.name}",
        "opset": opset,
        "features": features,
        "outputs": outputs,
        "training": training if training is not None else {"imported_from": onnx_path.name},
    }
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failed probes are reported, not logged
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated types for a bad file
        raise ImportRefused(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
    failures: list[ImportRefused] = []
    for lay in roles.layouts:
        manifest = _manifest(graph, roles, lay, data, fields)
        try:
            OnnxModel._check_signature(manifest, session)
            prove(OnnxModel(manifest, session))
        except ModelLoadError as exc:
            failures.append(ImportRefused(str(exc)))
            continue
        except ImportRefused as exc:
            failures.append(exc)
            continue
        break
    else:
        raise failures[0]

    def write(staged: Path) -> None:
        (staged / manifest.onnx_file).write_bytes(data)
        text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
        (staged / "model.json").write_text(text)
        if check is not None:
            check(staged)

    return Imported(install(repository, name, version, write, force=force), manifest)
