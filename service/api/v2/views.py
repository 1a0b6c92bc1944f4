"""Model lookup with Triton's messages, and the V2 model metadata and configuration documents.

Only the data input and output appear: the recurrent state is implicit (Triton's term), kept
by the server for sequences. Tensors are batch-first `[batch, time, features]` in the
manifest's raw dataset units; the output is FP32 on the wire.
"""

from __future__ import annotations

from typing import Any

from seqserve.service.api.v2.digits import parse_digits
from seqserve.service.api.v2.errors import V2Error, not_found
from seqserve.service.engine import Engine
from seqserve.service.runtime.registry import LoadedModel
from seqserve.service.settings import Settings

PLATFORM = "onnxruntime_onnx"


def resolve(engine: Engine, name: str, version: str | None) -> LoadedModel:
    registry = engine.registry
    if name not in registry.names():
        raise not_found(name)
    if version is None:
        return registry.get(name)
    number = parse_digits(version)
    if number is None or number <= 0:
        raise V2Error(
            f"failed to get model version from specified version string '{version[:64]}', "
            "version should be an integral value > 0"
        )
    wanted = str(number)
    if wanted not in registry.versions(name):
        raise not_found(name, wanted)
    return registry.get(name, wanted)


def _tensor(name: str, width: int) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": [-1, -1, width]}


def metadata(model: LoadedModel, versions: list[str]) -> dict[str, Any]:
    m = model.manifest
    sig = m.signature
    return {
        "name": m.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [_tensor(sig.data_input.name, m.n_features)],
        "outputs": [_tensor(sig.data_output.name, m.n_outputs)],
    }


def config(model: LoadedModel, settings: Settings) -> dict[str, Any]:
    """Triton's model configuration (dims exclude the batch dimension)."""
    m = model.manifest
    sig = m.signature
    states = [
        {
            "input_name": pair.input,
            "output_name": pair.output,
            "data_type": "TYPE_FP32",
            "dims": [pair.layers, pair.size],
            "initial_state": [
                {
                    "name": "zeros",
                    "data_type": "TYPE_FP32",
                    "dims": [pair.layers, pair.size],
                    "zero_data": True,
                }
            ],
        }
        for pair in sig.state
    ]
    return {
        "name": m.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "version_policy": {"all": {}},
        "max_batch_size": settings.limits.max_batch,
        "input": [
            {"name": sig.data_input.name, "data_type": "TYPE_FP32", "dims": [-1, m.n_features]}
        ],
        "output": [
            {
                "name": sig.data_output.name,
                "data_type": "TYPE_FP32",
                "dims": [-1, m.n_outputs],
                "label_filename": "",
            }
        ],
        "sequence_batching": {
            "max_sequence_idle_microseconds": int(settings.sessions.idle_ttl_s * 1e6),
            "state": states,
        },
        "instance_group": [{"name": m.name, "kind": "KIND_CPU", "count": settings.ort_pool_size}],
        "parameters": {
            "seqserve_version": {"string_value": m.version},
            "seqserve_cell": {"string_value": m.cell},
            "seqserve_output_kind": {"string_value": m.output_kind},
        },
    }
