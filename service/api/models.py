"""Model list, metadata and stateless predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from seqserve.service.api.arrays import steps_array
from seqserve.service.api.deps import CallerDep, EngineDep, OwnerDep
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.schemas import PredictRequest
from seqserve.service.runtime.registry import LoadedModel

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_view(model: LoadedModel, versions: list[str]) -> dict[str, Any]:
    m = model.manifest
    return {
        **m.model_dump(mode="json"),
        "versions": versions,
        "latest": versions[-1],
        "forecastable": m.forecastable,
        "state_bytes": model.layout.nbytes,
        "provider": model.runtime.provider,  # the ONNX Runtime execution provider running it
    }


@router.get("", summary="List models")
async def list_models(engine: EngineDep, owner: OwnerDep) -> FastJSON:
    reg = engine.registry
    models = []
    for name in reg.names():
        m = reg.get(name).manifest
        models.append(
            {
                "name": name,
                "versions": reg.versions(name),
                "latest": reg.latest(name),
                "cell": m.cell,
                "features": [f.name for f in m.features],
                "outputs": [o.name for o in m.outputs],
                "forecastable": m.forecastable,
            }
        )
    return FastJSON({"models": models})


@router.get("/{model}", summary="Model metadata: manifest, signature and versions")
async def get_model(
    model: str, engine: EngineDep, owner: OwnerDep, version: str | None = None
) -> FastJSON:
    loaded = engine.registry.get(model, version)
    return FastJSON(model_view(loaded, engine.registry.versions(model)))


@router.post("/{model}/predict", summary="Stateless predict over whole sequences")
async def predict(
    model: str, body: PredictRequest, engine: EngineDep, owner: OwnerDep, caller: CallerDep
) -> FastJSON:
    sequences = [steps_array(seq, f"inputs[{i}]") for i, seq in enumerate(body.inputs)]
    outputs, forecast = await engine.predict(model, body.version, sequences, body.horizon, caller)
    if not body.return_sequences:
        outputs = [out[-1:] for out in outputs]
    loaded = engine.registry.get(model, body.version)
    result: dict[str, Any] = {
        "model": loaded.manifest.name,
        "version": loaded.manifest.version,
        "outputs": outputs,
    }
    if forecast is not None:
        result["forecast"] = forecast
    return FastJSON(result)
