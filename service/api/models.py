"""Model list (with each version's state), metadata, stateless predict, load and unload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from seqserve.service.api.arrays import steps_array
from seqserve.service.api.deps import AdminDep, CallerDep, EngineDep, OwnerDep
from seqserve.service.api.responses import FastJSON
from seqserve.service.api.schemas import PredictRequest
from seqserve.service.runtime.registry import LoadedModel, VersionState

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


class UnloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(
        None, pattern=r"^[0-9]{1,18}$", description="The version to unload; all when omitted."
    )


def _states(states: list[VersionState]) -> list[dict[str, str]]:
    return [{k: v for k, v in s.view().items() if k != "name"} for s in states]


@router.get("", summary="List models, with the state of every version in the repository")
async def list_models(engine: EngineDep, owner: OwnerDep) -> FastJSON:
    reg = engine.registry
    models: list[dict[str, Any]] = []
    for name in reg.model_names():
        states = reg.index(name)
        if not states:
            continue  # a folder without version folders is no model
        entry: dict[str, Any] = {"name": name, "versions": [], "latest": None}
        if name in reg.names():
            m = reg.get(name).manifest
            entry = {
                "name": name,
                "versions": reg.versions(name),
                "latest": reg.latest(name),
                "cell": m.cell,
                "features": [f.name for f in m.features],
                "outputs": [o.name for o in m.outputs],
                "forecastable": m.forecastable,
            }
        models.append({**entry, "states": _states(states)})
    return FastJSON({"models": models})


@router.post("/{model}/load", summary="Load the model's new versions from the repository")
async def load_model(model: str, engine: EngineDep, admin: AdminDep) -> FastJSON:
    """Every version in the folder not yet READY is verified (hash, signature) and loaded; one
    that fails is refused (422, with every version's state) and the others keep serving."""
    states = await engine.repository.load(model)
    return FastJSON({"model": model, "versions": _states(states)})


@router.post("/{model}/unload", summary="Unload a version (or all) of the model")
async def unload_model(
    model: str, engine: EngineDep, admin: AdminDep, body: UnloadRequest | None = None
) -> FastJSON:
    """Steps in flight finish; later steps of its sessions answer 410 (their state is kept
    until they expire or are deleted, and serves again if the version is loaded again)."""
    states = await engine.repository.unload(model, body.version if body else None)
    return FastJSON({"model": model, "versions": _states(states)})


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
