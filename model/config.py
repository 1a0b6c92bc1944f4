"""The training configuration, importable without torch (the CLI builds its options from it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; the same config gives the same model and metrics."""

    out_dir: str = "runs/co2"  # the run directory: checkpoint and, by default, the plots
    plot_dir: str | None = None  # None: the run directory; the tracked docs/img only when asked
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    seed: int = 0
    threads: int = 1  # torch intra-op threads: fixed for reproducibility; one is fastest here
    max_epochs: int = 150
    patience: int = 20  # epochs without a better validation loss before stopping
    window: int = 104  # weeks per training sequence
    stride: int = 2  # weeks between window starts
    batch_size: int = 32
    lr: float = 1e-3
    # AdamW's decoupled weight decay and random initial states (uniform in +-state_noise) for the
    # training windows both improve the validation loss here, and both keep the learned
    # recurrence contractive: it forgets where it started, so float32 roundoff does not pile up
    # over long streams (ONNX Runtime stays within 1e-5 of the float64 reference).
    weight_decay: float = 1.0
    state_noise: float = 1.0
    clip_norm: float = 1.0
    progress: bool = True
    plots: bool = True  # loss and forecast PNGs, into plot_dir
    force: bool = False  # replace a run directory that already holds a checkpoint
