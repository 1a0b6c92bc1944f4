"""The contract a user's own recurrent `nn.Module` keeps for `seqserve export --module`.

The contract: `forward(x[B,T,F], *states) -> (y[B,T,O], *new_states)`, states `[L,B,H]`, batch
first, one direction. States may travel nested (`nn.LSTM`'s `(y, (h, c))`): they go in with the
structure they come out with, so a plain `nn.LSTM`/`nn.GRU` fits as it is. The number and shapes
of the states come from running the module once (`probe`); `model.export_module` does the rest.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
from collections.abc import Sequence

import torch
from torch import nn

Nested = torch.Tensor | tuple["Nested", ...]
CONTRACT = "forward(x[B,T,F], *states) -> (y[B,T,O], *new_states) with states [L,B,H]"


class ModuleRefused(Exception):
    """The module breaks the contract, or its export disagrees with it; nothing was written."""


def parse_args(pairs: Sequence[str]) -> dict[str, object]:
    """`KEY=VALUE` strings as factory keyword arguments; values are Python literals or text."""
    kwargs: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not (sep and key.isidentifier()):
            raise ModuleRefused(f"--module-arg {pair!r}: expected KEY=VALUE")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


def load_module(spec: str, kwargs: dict[str, object], weights: str | None) -> nn.Module:
    """Call the factory (or class) at `pkg.mod:name` and load a state_dict into its module."""
    mod_name, sep, attr = spec.partition(":")
    if not (sep and mod_name and attr):
        raise ModuleRefused(f"--module {spec!r}: expected pkg.mod:factory")
    if os.getcwd() not in sys.path:  # as `python -m` and uvicorn do: modules next to you import
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModuleRefused(f"--module {spec!r}: {exc}") from exc
    try:
        module = factory(**kwargs)
    except Exception as exc:  # the user's code
        raise ModuleRefused(f"calling {spec}(**{kwargs}) failed: {exc!r}") from exc
    if not isinstance(module, nn.Module):
        raise ModuleRefused(f"{spec} returned {type(module).__name__}, not a torch nn.Module")
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except OSError:
            raise
        except Exception as exc:  # unpickling and loading raise several types
            raise ModuleRefused(f"--weights {weights} do not fit {spec}: {exc}") from exc
    return module.eval()


def _flatten(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _flatten(v)]
    raise ModuleRefused(f"the module returned a {type(value).__name__}; {CONTRACT}")


def _rebuild(template: object, flat: list[torch.Tensor]) -> Nested:
    """`flat` (consumed from the front) in the nesting of `template`."""
    if isinstance(template, torch.Tensor):
        return flat.pop(0)
    return tuple(_rebuild(t, flat) for t in template)  # type: ignore[attr-defined]


class Flat(nn.Module):
    """The user's module with flat states: `(x, *states) -> (y, *new_states)`."""

    def __init__(self, module: nn.Module, template: tuple[object, ...]) -> None:
        super().__init__()
        self.module, self.template = module, template

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, *rest = self.module(x, *_rebuild(self.template, list(states)))
        return (y, *_flatten(rest))


def _check_rnns(module: nn.Module) -> None:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.RNNBase) and sub.bidirectional:
            where = f"submodule {name!r}" if name else "the module"
            raise ModuleRefused(
                f"{where} is a bidirectional {type(sub).__name__}: each output needs later "
                "steps of the input, so it cannot stream"
            )
    if isinstance(module, nn.RNNBase) and not module.batch_first:
        raise ModuleRefused(
            f"the {type(module).__name__} is not batch_first; build it with batch_first=True "
            "(x is [B, T, F])"
        )


def default_features(module: nn.Module) -> int:
    for sub in module.modules():
        size = getattr(sub, "input_size", None) or getattr(sub, "in_features", None)
        if isinstance(size, int):
            return size
    raise ModuleRefused("cannot tell the number of input features; pass --features N")


def _call(module: nn.Module, *args: object) -> object:
    try:
        with torch.no_grad():
            return module(*args)
    except TypeError:
        raise
    except Exception as exc:  # the user's code: any error means x or the states misfit it
        shapes = [list(a.shape) if isinstance(a, torch.Tensor) else "..." for a in args]
        raise ModuleRefused(f"running the module on {shapes} failed: {exc}") from exc


def _states_from_rnns(module: nn.Module) -> tuple[torch.Tensor, ...]:
    """Zero states of a module whose forward needs them: one `nn.LSTM`/`nn.GRU` inside."""
    params = list(inspect.signature(module.forward).parameters.values())[1:]
    needed = [p for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    rnns = [m for m in module.modules() if isinstance(m, nn.LSTM | nn.GRU)]
    if not needed or len(rnns) != 1:
        raise ModuleRefused(
            f"cannot find the states: calling forward(x) failed and {len(rnns)} nn.LSTM/nn.GRU "
            f"found; give the states defaults (None -> zeros) so forward(x) runs; {CONTRACT}"
        )
    rnn = rnns[0]
    count = 2 if isinstance(rnn, nn.LSTM) else 1
    if len(needed) != count:
        raise ModuleRefused(
            f"forward takes {len(needed)} state arguments but its {type(rnn).__name__} carries "
            f"{count}; {CONTRACT}"
        )
    return tuple(torch.zeros(rnn.num_layers, 2, rnn.hidden_size) for _ in range(count))


def probe(module: nn.Module, n_features: int) -> tuple[Flat, list[tuple[int, int]], int]:
    """Run the module on x[2,3,F]: its flat wrapper, state shapes `(L, H)` and output count."""
    _check_rnns(module)
    x = torch.randn(2, 3, n_features)
    try:
        out = _call(module, x)
        if not isinstance(out, tuple | list) or len(out) < 2:
            raise ModuleRefused(f"forward(x) returned no state; {CONTRACT}")
        template: tuple[object, ...] = tuple(out[1:])
    except TypeError:  # the states are required arguments
        template = _states_from_rnns(module)
    states = [torch.rand_like(s) - 0.5 for s in _flatten(template)]
    for k, s in enumerate(states):
        if s.dim() != 3 or s.shape[1] != 2:
            raise ModuleRefused(f"state {k} has shape {list(s.shape)}; {CONTRACT}")
    flat = Flat(module, template).eval()
    try:
        y, *new = _call(flat, x, *states)  # type: ignore[misc]
    except TypeError as exc:
        msg = f"forward does not take the states it returns ({exc}); {CONTRACT}"
        raise ModuleRefused(msg) from exc
    if y.dim() != 3 or tuple(y.shape[:2]) != (2, 3):
        raise ModuleRefused(f"y has shape {list(y.shape)} for x [2, 3, F]; {CONTRACT}")
    if [n.shape for n in new] != [s.shape for s in states]:
        got, want = [list(n.shape) for n in new], [list(s.shape) for s in states]
        raise ModuleRefused(f"new states have shapes {got}, the states given {want}; {CONTRACT}")
    return flat, [(s.shape[0], s.shape[2]) for s in states], int(y.shape[2])
