"""Request bodies of the v1 API. Strict numbers: booleans and numeric strings are refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict
from seqserve.service.runtime.layout import MAX_STEP

Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict()]
# every integer the API echoes stays within what a JSON number (a double) holds exactly
JsonInt = Annotated[int, Strict(), Field(ge=-MAX_STEP, le=MAX_STEP)]
Timesteps = list[list[Number]]

_CO2_STEPS = [[315.71], [317.45]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Body):
    inputs: list[Timesteps] = Field(
        description="[B][T][F]: B whole sequences of T timesteps of F features, in dataset units."
        " Sequences may differ in length.",
        examples=[[_CO2_STEPS]],
    )
    version: str | None = Field(None, description="Model version; the latest when omitted.")
    horizon: Integer | None = Field(
        None,
        ge=1,
        le=MAX_STEP,
        description="Also forecast this many steps past each sequence's end.",
    )
    return_sequences: Annotated[bool, Strict()] = Field(
        True, description="Outputs for every timestep (true) or only the last one (false)."
    )


class CreateSessionRequest(_Body):
    model: str | None = Field(None, examples=["co2"], description="Model name.")
    version: str | None = Field(None, description="Model version; the latest when omitted.")
    idle_ttl_s: Number | None = Field(None, gt=0, description="Expire after this long unused.")
    ttl_s: Number | None = Field(None, gt=0, description="Expire this long after creation.")
    state: dict[str, Any] | None = Field(
        None, description="A state document from GET /v1/sessions/{id}/state to start from."
    )


class StepRequest(_Body):
    inputs: Timesteps = Field(
        description="[T][F]: T timesteps of F features, in dataset units.",
        examples=[_CO2_STEPS],
    )
    step: Integer | None = Field(
        None,
        ge=0,
        le=MAX_STEP,
        description="The step index this request expects to start at. A mismatch is a 409; "
        "a retry of the last applied request returns its stored answer.",
    )


class ForecastRequest(_Body):
    horizon: Integer = Field(
        ge=1, le=MAX_STEP, examples=[13], description="Steps ahead to forecast."
    )


class StreamMessage(StepRequest):
    """A WebSocket step message; `id` comes back in its reply, so it must be echoable."""

    id: str | JsonInt | None = Field(
        None, description="Echoed in the reply, for the client's bookkeeping."
    )
