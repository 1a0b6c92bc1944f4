"""Users' own PyTorch modules for `seqserve export --module` tests: ones that keep the contract
(`forward(x, *states) -> (y, *new_states)`, or a plain `nn.LSTM`) and ones that break it."""

from __future__ import annotations

import torch
from torch import nn


class LSTMWithHead(nn.Module):
    """A 2-layer LSTM and a linear head: `(x, h, c) -> (y, h, c)`."""

    def __init__(self, n_features: int = 3, hidden: int = 16, n_outputs: int = 2) -> None:
        super().__init__()
        self.rnn = nn.LSTM(n_features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h, c) = self.rnn(x, (h, c))
        return self.head(out), h, c


class GRUWithMLP(nn.Module):
    """A 2-layer GRU and a 2-layer MLP head, its state as one optional argument returned
    nested like `nn.GRU`'s: `(x, h=None) -> (y, h)`."""

    def __init__(self, n_features: int = 2, hidden: int = 12) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_features, hidden, num_layers=2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(hidden, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.rnn(x, h)
        return self.mlp(out), h


class LSTMNestedState(nn.Module):
    """An LSTM whose state travels as one tuple: `(x, (h, c)) -> (y, (h, c))`."""

    def __init__(self, n_features: int = 2, hidden: int = 8) -> None:
        super().__init__()
        self.rnn = nn.LSTM(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_features)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.rnn(x, state)
        return self.head(out), state


class Stateless(nn.Module):
    """Breaks the contract: `x -> y`, its LSTM always starting from zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(2, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


class StateOutOnly(nn.Module):
    """Breaks the contract: returns its state but takes none."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(2, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.rnn(x)
        return out, h


def plain_lstm() -> nn.Module:
    """A plain batch-first `nn.LSTM` (no head): `(x, (h, c)) -> (y, (h, c))`."""
    return nn.LSTM(2, 6, num_layers=2, batch_first=True)


def bidirectional() -> nn.Module:
    return nn.LSTM(2, 6, batch_first=True, bidirectional=True)


def time_major() -> nn.Module:
    return nn.GRU(2, 6)


def sized(hidden: int = 4, layers: int = 1) -> nn.Module:
    """A factory with arguments, for --module-arg."""
    return nn.GRU(2, hidden, num_layers=layers, batch_first=True)


def not_a_module() -> object:
    return "not a module"
