"""Finds the roles in an ONNX graph: data inputs and output, state pairs, and the data layout.

A state pair is a graph input and a graph output of the same `[L, B, H]` or `[B, H]` shape where
the input feeds a recurrent op's initial-state slot (LSTM, GRU, RNN, or a Scan/Loop carry) and
the output is computed from the matching final-state slot of that op. What is left is data.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqserve.importer.errors import ImportRefused
from seqserve.importer.graph import RNN_OPS, Dim, Graph, state_slots

TIME_WORDS = ("time", "seq", "step", "len")


@dataclass(frozen=True)
class Roles:
    data_inputs: list[str]
    data_output: str
    states: list[tuple[str, str]]  # (input, output)
    layouts: list[str]  # data layouts to try, most likely first
    cell: str


def _same_shape(a: list[Dim], b: list[Dim]) -> bool:
    """Same rank (2 or 3) and no two fixed dims that differ (shape inference may fix a dim
    that the graph declares symbolic)."""
    if len(a) != len(b) or len(a) not in (2, 3):
        return False
    return all(
        x == y or not isinstance(x, int) or not isinstance(y, int)
        for x, y in zip(a, b, strict=True)
    )


def refuse_one_way(graph: Graph) -> None:
    """A recurrence that reads the sequence backwards cannot stream."""
    for node in graph.recurrent:
        if node.op_type not in RNN_OPS:
            continue
        direction = next((a.s.decode() for a in node.attribute if a.name == "direction"), "forward")
        if direction != "forward":
            fed_by = sorted(graph.upstream(node.input[0]) & set(graph.inputs))
            raise ImportRefused(
                f"not streamable: {node.op_type} node {node.name or node.output[0]!r} runs "
                f"direction={direction}, so each output needs later steps of input {fed_by}"
            )


def find_pairs(graph: Graph) -> list[tuple[str, str]]:
    """State pairs by data flow through the recurrent ops' state slots (see module doc)."""
    found: dict[str, tuple[int, str]] = {}
    for node in graph.recurrent:
        for in_slot, out_slot in state_slots(node):
            if in_slot >= len(node.input) or not node.input[in_slot]:
                continue
            sources = graph.upstream(node.input[in_slot]) & set(graph.inputs)
            if out_slot >= len(node.output) or not node.output[out_slot]:
                reached: dict[str, int] = {}
            else:
                reached = graph.downstream(node.output[out_slot])
            for src in sources:
                hits = [
                    (d, out)
                    for out, d in reached.items()
                    if out in graph.outputs and _same_shape(graph.inputs[src], graph.outputs[out])
                ]
                if not hits:
                    slot = f"{node.op_type} node {node.name or node.output[0]!r}"
                    raise ImportRefused(
                        f"state not carried: input {src!r} feeds the initial state of {slot}, but "
                        f"no graph output of its shape {graph.inputs[src]} is fed by that node's "
                        "final state (name the pair with --state IN:OUT if it is one)"
                    )
                best = min(hits)
                if src not in found or best < found[src]:
                    found[src] = best
    pairs = [(src, out) for src, (_, out) in found.items()]
    outs = [out for _, out in pairs]
    for out in set(outs):
        if outs.count(out) > 1:
            names = sorted(src for src, o in pairs if o == out)
            raise ImportRefused(
                f"state inputs {names} all map to output {out!r}; name the pairs with --state"
            )
    return sorted(pairs, key=lambda p: list(graph.inputs).index(p[0]))


def _layouts(graph: Graph, data: str, states: list[tuple[str, str]]) -> list[str]:
    dims = graph.inputs[data]
    if len(dims) == 2:
        return ["no_time_axis"]
    batch_names = set()
    for src, _ in states:
        s = graph.inputs[src]
        batch_names.add(s[1] if len(s) == 3 else s[0])
    first, second = (str(d).lower() if d is not None else "" for d in dims[:2])
    if dims[0] in batch_names or any(w in second for w in TIME_WORDS) or "batch" in first:
        return ["batch_major", "time_major"]
    if dims[1] in batch_names or any(w in first for w in TIME_WORDS) or "batch" in second:
        return ["time_major", "batch_major"]
    return ["batch_major", "time_major"]  # the numerical checks decide


def detect(
    graph: Graph,
    data_inputs: list[str] | None = None,
    data_output: str | None = None,
    states: list[tuple[str, str]] | None = None,
    layout: str | None = None,
) -> Roles:
    """The model's roles; every argument given overrides the corresponding guess."""
    for name in [*(data_inputs or []), *(src for src, _ in states or [])]:
        if name not in graph.inputs:
            raise ImportRefused(f"no graph input {name!r}; inputs are {sorted(graph.inputs)}")
    for name in [*([data_output] if data_output else []), *(out for _, out in states or [])]:
        if name not in graph.outputs:
            raise ImportRefused(f"no graph output {name!r}; outputs are {sorted(graph.outputs)}")
    refuse_one_way(graph)
    if states is None:
        if not graph.recurrent:
            raise ImportRefused(
                "no recurrent op (LSTM, GRU, RNN, Scan, Loop) in the graph, so no state pair can "
                "be found; name them with --state IN:OUT"
            )
        states = find_pairs(graph)
        if not states:
            raise ImportRefused("no state pair found: no graph input feeds a recurrent state")
    state_in = {src for src, _ in states}
    state_out = {out for _, out in states}
    if data_inputs is None:
        data_inputs = [n for n in graph.inputs if n not in state_in]
    if not data_inputs:
        raise ImportRefused("no data input left once the state inputs are taken")
    if data_output is None:
        rest = [n for n in graph.outputs if n not in state_out]
        if len(rest) != 1:
            for out in rest:
                twin = next(
                    (i for i in state_in if _same_shape(graph.inputs[i], graph.outputs[out])), None
                )
                if twin is None:
                    twin = next(
                        (
                            i
                            for i in data_inputs
                            if _same_shape(graph.inputs[i], graph.outputs[out])
                        ),
                        None,
                    )
                if twin is not None and len(graph.outputs[out]) == len(graph.inputs[twin]):
                    raise ImportRefused(
                        f"state not carried: output {out!r} has the shape of input {twin!r} but "
                        "is not fed by a recurrent op's final state"
                    )
            raise ImportRefused(
                f"expected one data output besides the states, found {rest}; use --data-output"
            )
        data_output = rest[0]
    extra = set(graph.inputs) - state_in - set(data_inputs)
    if extra:
        raise ImportRefused(f"graph inputs {sorted(extra)} have no role; name them with flags")
    _check_dims(graph, data_inputs, data_output, states)
    layouts = [layout] if layout else _layouts(graph, data_inputs[0], states)
    ops = {n.op_type for n in graph.recurrent}
    cell = next((op.lower() for op in ("LSTM", "GRU", "RNN") if ops == {op}), "custom")
    return Roles(data_inputs, data_output, list(states), layouts, cell)


def _check_dims(
    graph: Graph, data_inputs: list[str], data_output: str, states: list[tuple[str, str]]
) -> None:
    """Refuse shapes the server cannot fix: a fixed batch, unknown feature or state sizes."""
    rank = len(graph.inputs[data_inputs[0]])
    for name, dims in [(n, graph.inputs[n]) for n in data_inputs] + [
        (data_output, graph.outputs[data_output])
    ]:
        if len(dims) != rank or rank not in (2, 3):
            raise ImportRefused(
                f"data tensor {name!r} has shape {dims}; expected [B, T, F], [T, B, F] or [B, F] "
                f"(all data tensors of one rank)"
            )
        if not isinstance(dims[-1], int):
            raise ImportRefused(
                f"dynamic shape: data tensor {name!r} has no fixed feature count (last dim "
                f"{dims[-1]!r}); the manifest needs one"
            )
        for d in dims[:-1]:
            if isinstance(d, int):
                raise ImportRefused(
                    f"fixed shape: data tensor {name!r} has shape {dims}; its batch and time "
                    "dims must be dynamic for sessions to be batched and chunked"
                )
    for src, out in states:
        dims = graph.inputs[src]
        at = 1 if len(dims) == 3 else 0
        fixed = [d for k, d in enumerate(dims) if k != at]
        if (
            len(dims) not in (2, 3)
            or isinstance(dims[at], int)
            or not all(isinstance(d, int) for d in fixed)
        ):
            raise ImportRefused(
                f"dynamic shape: state {src!r} has shape {dims}; expected [layers, batch, hidden] "
                "or [batch, hidden] with only the batch dim dynamic"
            )
        if not _same_shape(dims, graph.outputs[out]):
            raise ImportRefused(
                f"state {src!r} -> {out!r}: shapes {dims} and {graph.outputs[out]} differ"
            )
