"""The model manifest (`model.json`): the contract between training and serving.

A model directory `<repository>/<name>/<version>/` holds `model.onnx` and this manifest. The
manifest names the ONNX graph's inputs and outputs and their roles, how raw feature values are
preprocessed before the model sees them, what the outputs mean, and how an output feeds back
as the next input (which makes autoregressive forecasts possible).
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

MANIFEST_FORMAT: Literal["seqserve.manifest/v1"] = "seqserve.manifest/v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# fields added after the first manifests: written only when not at their default, so the
# manifests of models with the original layout stay byte for byte what they were
_LATER_FIELDS = {"layout": "LBH", "data_layout": "batch_major", "more_data_inputs": []}


class _Evolving(_Strict):
    @model_serializer(mode="wrap")
    def _omit_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        for key, default in _LATER_FIELDS.items():
            if key in data and data[key] == default:
                del data[key]
        return data


DataLayout = Literal["batch_major", "time_major", "no_time_axis"]
StateLayout = Literal["LBH", "BH"]


class TensorSpec(_Strict):
    """A graph input or output: data `[B, T, N]`, `[T, B, N]` or `[B, N]` (the signature's
    `data_layout`), or state `[L, B, H]` / `[B, H]` (the pair's `layout`)."""

    name: str
    dtype: Literal["float32"] = "float32"
    shape: list[int | str] = Field(description="Static dims as ints, dynamic dims as names.")


class StatePair(_Evolving):
    """A recurrent state tensor: fed in as `input`, returned updated as `output`."""

    input: str = Field(examples=["h0"])
    output: str = Field(examples=["hn"])
    layers: int = Field(ge=1)
    size: int = Field(ge=1, description="Hidden size of one layer.")
    layout: StateLayout = Field(
        "LBH",
        description="`LBH`: the graph's tensor is [layers, batch, hidden]; `BH`: [batch, "
        "hidden] (then layers is 1).",
    )

    @model_validator(mode="after")
    def _one_layer_when_bh(self) -> StatePair:
        if self.layout == "BH" and self.layers != 1:
            raise ValueError(f"state {self.input!r} has layout BH, so layers must be 1")
        return self

    def shape(self) -> list[int | str]:
        """The graph tensor's shape, with the batch dim named `batch`."""
        return ["batch", self.size] if self.layout == "BH" else [self.layers, "batch", self.size]


class Feature(_Strict):
    """One input feature and its preprocessing: model_x = (diff?(raw) - mean) / std."""

    name: str
    unit: str = ""
    difference: bool = Field(
        False, description="Feed the first difference x[t] - x[t-1] instead of x[t]."
    )
    mean: float = 0.0
    std: float = Field(1.0, gt=0.0)


class Output(_Strict):
    """One output channel. With `feature` set, it predicts that input feature's next value."""

    name: str
    feature: int | None = Field(
        None,
        ge=0,
        description="Index of the input feature this output predicts at t+1, in that feature's "
        "preprocessed space; the server inverts the scaling (and differencing) for clients.",
    )


class Signature(_Evolving):
    data_input: TensorSpec
    data_output: TensorSpec
    state: list[StatePair] = Field(min_length=1)
    data_layout: DataLayout = Field(
        "batch_major",
        description="Axes of the data tensors: [B, T, N], [T, B, N], or [B, N] (one step per "
        "call; the server loops over time).",
    )
    more_data_inputs: list[TensorSpec] = Field(
        default_factory=list,
        description="Further data inputs, concatenated in the graph: a client's feature row is "
        "split into data_input's features, then each of these in order.",
    )

    @property
    def data_inputs(self) -> list[TensorSpec]:
        return [self.data_input, *self.more_data_inputs]

    def graph_specs(self) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
        """The graph inputs and outputs this signature implies, by name."""
        inputs = {spec.name: spec for spec in self.data_inputs}
        outputs = {self.data_output.name: self.data_output}
        for pair in self.state:
            shape = pair.shape()
            inputs[pair.input] = TensorSpec(name=pair.input, shape=shape)
            outputs[pair.output] = TensorSpec(name=pair.output, shape=shape)
        return inputs, outputs


class Manifest(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)

    format: Literal["seqserve.manifest/v1"] = MANIFEST_FORMAT
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    description: str = ""
    cell: Literal["lstm", "gru", "rnn", "custom"]
    onnx_file: str = "model.onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    opset: int = Field(ge=7)
    signature: Signature
    features: list[Feature] = Field(min_length=1)
    outputs: list[Output] = Field(min_length=1)
    output_kind: Literal["regression", "class_probabilities", "next_token_logits"] = "regression"
    training: dict[str, object] = Field(default_factory=dict)
    metrics: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        dims = [spec.shape[-1] for spec in self.signature.data_inputs]
        if not all(isinstance(d, int) for d in dims):
            raise ValueError("every data input needs a fixed feature count (its last dim)")
        n_feat = sum(int(d) for d in dims)
        if n_feat != len(self.features):
            raise ValueError(f"data_input has {n_feat} features but {len(self.features)} listed")
        n_out = self.signature.data_output.shape[-1]
        if n_out != len(self.outputs):
            raise ValueError(f"data_output has {n_out} channels but {len(self.outputs)} listed")
        for out in self.outputs:
            if out.feature is not None and out.feature >= len(self.features):
                raise ValueError(f"output {out.name!r} maps to missing feature {out.feature}")
        return self

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def forecastable(self) -> bool:
        """True when every input feature is predicted by some output (autoregression works)."""
        targets = {o.feature for o in self.outputs if o.feature is not None}
        return self.output_kind == "regression" and targets == set(range(self.n_features))

    @property
    def differenced(self) -> bool:
        return any(f.difference for f in self.features)
