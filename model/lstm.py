"""PyTorch recurrent forecasters with the recurrent state passed explicitly in and out.

Explicit state is what a stateful server needs: the graph takes the previous state as inputs and
returns the new one, so the server can keep it between requests. Both modules are batch-first.
"""

from __future__ import annotations

import torch
from torch import nn


class _Recurrent(nn.Module):
    """A batch-first `nn.LSTM`/`nn.GRU` stack and a linear head; subclasses give `forward`."""

    cell: str
    rnn_type: type[nn.RNNBase]
    n_states: int

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, n_outputs: int):
        super().__init__()
        self.n_features = n_features
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.n_outputs = n_outputs
        self.rnn = self.rnn_type(n_features, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, n_outputs)

    def zero_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        shape = (self.num_layers, batch, self.hidden_size)
        return tuple(torch.zeros(shape) for _ in range(self.n_states))


class LSTMForecaster(_Recurrent):
    """`(x[B,T,F], h0[L,B,H], c0[L,B,H]) -> (y[B,T,O], hn[L,B,H], cn[L,B,H])`."""

    cell, rnn_type, n_states = "lstm", nn.LSTM, 2

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (hn, cn) = self.rnn(x, (h0, c0))
        return self.head(out), hn, cn


class GRUForecaster(_Recurrent):
    """`(x[B,T,F], h0[L,B,H]) -> (y[B,T,O], hn[L,B,H])`."""

    cell, rnn_type, n_states = "gru", nn.GRU, 1

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, hn = self.rnn(x, h0)
        return self.head(out), hn


Forecaster = LSTMForecaster | GRUForecaster

CELLS: dict[str, type[LSTMForecaster] | type[GRUForecaster]] = {
    "lstm": LSTMForecaster,
    "gru": GRUForecaster,
}


def build(
    cell: str, n_features: int, hidden_size: int, num_layers: int, n_outputs: int
) -> nn.Module:
    """Build a forecaster by cell name (`"lstm"` or `"gru"`)."""
    try:
        cls = CELLS[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(CELLS)}") from None
    return cls(n_features, hidden_size, num_layers, n_outputs)
