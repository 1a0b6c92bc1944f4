"""One loaded model version: an ONNX Runtime session checked against its manifest."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError
from seqserve.service.errors import ModelLoadError
from seqserve.service.runtime import providers
from seqserve.service.runtime.manifest import Manifest, TensorSpec
from seqserve.service.settings import OrtSettings

Array = np.ndarray

_ORT_TYPES = {"float32": "tensor(float)"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_tensor(kind: str, spec: TensorSpec, node: ort.NodeArg) -> None:
    if node.type != _ORT_TYPES[spec.dtype]:
        raise ModelLoadError(f"{kind} {spec.name!r}: manifest says {spec.dtype}, graph {node.type}")
    if len(node.shape) != len(spec.shape):
        raise ModelLoadError(
            f"{kind} {spec.name!r}: manifest rank {len(spec.shape)}, graph rank {len(node.shape)}"
        )
    for i, (want, got) in enumerate(zip(spec.shape, node.shape, strict=True)):
        if isinstance(want, int) and isinstance(got, int) and want != got:
            raise ModelLoadError(
                f"{kind} {spec.name!r} dim {i}: manifest says {want}, graph says {got}"
            )


class OnnxModel:
    """Runs `(x, *states) -> (y, *new_states)`; safe to call from several threads.

    Callers always see data `[B, T, F]` and states `[L, B, H]`; other graph layouts (time-major,
    no time axis, `[B, H]` states, several data inputs) are adapted here, at the edge.
    """

    def __init__(self, manifest: Manifest, session: ort.InferenceSession) -> None:
        self.manifest = manifest
        self._session = session
        self.provider: str = session.get_providers()[0]
        sig = manifest.signature
        self._data = [spec.name for spec in sig.data_inputs]
        self._inputs = [p.input for p in sig.state]
        self._outputs = [sig.data_output.name] + [p.output for p in sig.state]
        self.state_shapes = [(p.layers, p.size) for p in sig.state]
        self._bh = [p.layout == "BH" for p in sig.state]
        dims = [int(spec.shape[-1]) for spec in sig.data_inputs]
        self._splits = list(np.cumsum(dims)[:-1])
        self._layout = sig.data_layout
        # the bundled models' shape: feed the caller's arrays untouched
        self._plain = self._layout == "batch_major" and len(self._data) == 1 and not any(self._bh)
        self.observe: Callable[[float, int], None] = lambda seconds, batch: None

    @classmethod
    def load(
        cls, directory: Path, threads: int = 1, options: OrtSettings | None = None
    ) -> OnnxModel:
        manifest_path = directory / "model.json"
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_bytes())
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{directory}: no model.json") from exc
        except ValidationError as exc:
            raise ModelLoadError(f"{manifest_path}: invalid manifest: {exc}") from exc
        if directory.name != manifest.version or directory.parent.name != manifest.name:
            raise ModelLoadError(
                f"{directory}: folder says {directory.parent.name}/{directory.name} but the "
                f"manifest says {manifest.name}/{manifest.version}"
            )
        onnx_path = directory / manifest.onnx_file
        if not onnx_path.is_file():
            raise ModelLoadError(f"{directory}: {manifest.onnx_file} is missing")
        actual = _sha256(onnx_path)
        if actual != manifest.sha256:
            raise ModelLoadError(
                f"{onnx_path}: SHA-256 {actual} disagrees with the manifest's {manifest.sha256}"
            )
        options = options or OrtSettings()
        chosen = providers.providers(options)
        try:
            session = ort.InferenceSession(
                str(onnx_path),
                providers.session_options(options, threads),
                providers=[name for name, _ in chosen],
                provider_options=[opts for _, opts in chosen],
            )
        except Exception as exc:  # ORT raises several unrelated types for a bad file
            raise ModelLoadError(f"{onnx_path}: ONNX Runtime cannot load it: {exc}") from exc
        cls._check_signature(manifest, session)
        providers.check_in_use(session, chosen[0][0], str(onnx_path))
        return cls(manifest, session)

    @staticmethod
    def _check_signature(manifest: Manifest, session: ort.InferenceSession) -> None:
        graph_in = {n.name: n for n in session.get_inputs()}
        graph_out = {n.name: n for n in session.get_outputs()}
        want_in, want_out = manifest.signature.graph_specs()
        for kind, want, got in (("input", want_in, graph_in), ("output", want_out, graph_out)):
            if set(want) != set(got):
                raise ModelLoadError(
                    f"graph {kind}s {sorted(got)} disagree with the manifest's {sorted(want)}"
                )
            for name, spec in want.items():
                _check_tensor(kind, spec, got[name])

    def run(self, x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        """x: float32 [B, T, F]; states: float32 [L, B, H] each, in manifest order."""
        started = time.perf_counter()
        if self._plain:
            feeds = dict(zip([*self._data, *self._inputs], [x, *states], strict=True))
            y, *new_states = self._session.run(self._outputs, feeds)
        elif self._layout == "no_time_axis":
            y, new_states = self._run_steps(x, states)
        else:
            tm = self._layout == "time_major"
            y, new_states = self._call(
                np.ascontiguousarray(x.transpose(1, 0, 2)) if tm else x, states
            )
            if tm:
                y = np.ascontiguousarray(y.transpose(1, 0, 2))
        self.observe(time.perf_counter() - started, x.shape[0])
        return y, new_states

    def _run_steps(self, x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        """A graph without a time axis: one call per step, carrying the state."""
        ys = []
        for t in range(x.shape[1]):
            y, states = self._call(x[:, t], states)
            ys.append(y)
        return np.stack(ys, axis=1), states

    def _call(self, x: Array, states: list[Array]) -> tuple[Array, list[Array]]:
        """One graph call in the graph's own data layout; states [L, B, H] in and out."""
        parts = np.split(x, self._splits, axis=-1) if self._splits else [x]
        feeds = {
            name: np.ascontiguousarray(part) for name, part in zip(self._data, parts, strict=True)
        }
        for name, state, bh in zip(self._inputs, states, self._bh, strict=True):
            feeds[name] = state[0] if bh else state
        y, *new_states = self._session.run(self._outputs, feeds)
        new_states = [s[None] if bh else s for s, bh in zip(new_states, self._bh, strict=True)]
        return y, new_states
