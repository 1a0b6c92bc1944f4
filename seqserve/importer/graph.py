"""An ONNX graph's data flow (after shape inference): which tensor is computed from which."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import onnx
from onnx import TensorProto

from seqserve.importer.errors import ImportRefused

Dim = int | str | None
RNN_OPS = {"LSTM", "GRU", "RNN"}
RECURRENT = RNN_OPS | {"Scan", "Loop"}


def _dims(vi: onnx.ValueInfoProto) -> list[Dim]:
    shape = vi.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _used_names(graph: onnx.GraphProto) -> tuple[set[str], set[str]]:
    """Names a (sub)graph reads, and names it defines itself (recursively)."""
    used: set[str] = set()
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for node in graph.node:
        used.update(n for n in node.input if n)
        defined.update(n for n in node.output if n)
        for sub in _subgraphs(node):
            u, d = _used_names(sub)
            used |= u
            defined |= d
    return used, defined


def _subgraphs(node: onnx.NodeProto) -> Iterable[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        yield from attr.graphs


def state_slots(node: onnx.NodeProto) -> list[tuple[int, int]]:
    """(initial-state input slot, final-state output slot) pairs of a recurrent node."""
    if node.op_type == "LSTM":
        return [(5, 1), (6, 2)]
    if node.op_type in ("GRU", "RNN"):
        return [(5, 1)]
    if node.op_type == "Scan":
        n_scan = next(a.i for a in node.attribute if a.name == "num_scan_inputs")
        return [(k, k) for k in range(len(node.input) - n_scan)]
    return [(2 + k, k) for k in range(len(node.input) - 2)]  # Loop: M, cond, carried...


class Graph:
    """The top-level graph with its data flow, after ONNX shape inference."""

    def __init__(self, model: onnx.ModelProto) -> None:
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:  # onnx raises several types for a malformed graph
            raise ImportRefused(f"ONNX shape inference fails on this file: {exc}") from exc
        g = model.graph
        inits = {i.name for i in g.initializer}
        self.inputs = {vi.name: _dims(vi) for vi in g.input if vi.name not in inits}
        self.outputs = {vi.name: _dims(vi) for vi in g.output}
        for vi in [*g.input, *g.output]:
            if vi.name in inits:
                continue
            if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
                raise ImportRefused(f"tensor {vi.name!r} is not float32; seqserve serves float32")
        self.nodes = list(g.node)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        self.node_inputs: list[list[str]] = []
        for k, node in enumerate(self.nodes):
            names = [n for n in node.input if n]
            for sub in _subgraphs(node):
                used, defined = _used_names(sub)
                names += sorted(used - defined)  # outer-scope tensors a body reads implicitly
            self.node_inputs.append(names)
            for n in names:
                self.consumers.setdefault(n, []).append(k)
            for n in node.output:
                if n:
                    self.producer[n] = k
        self.recurrent = [n for n in self.nodes if n.op_type in RECURRENT]

    def downstream(self, start: str) -> dict[str, int]:
        """Every tensor computed from `start`, with its distance in nodes."""
        dist = {start: 0}
        queue = deque([start])
        while queue:
            name = queue.popleft()
            for k in self.consumers.get(name, []):
                for out in self.nodes[k].output:
                    if out and out not in dist:
                        dist[out] = dist[name] + 1
                        queue.append(out)
        return dist

    def upstream(self, start: str) -> set[str]:
        """Every tensor `start` is computed from (itself included)."""
        seen = {start}
        queue = deque([start])
        while queue:
            k = self.producer.get(queue.popleft())
            if k is None:
                continue
            for name in self.node_inputs[k]:
                if name not in seen:
                    seen.add(name)
                    queue.append(name)
        return seen
