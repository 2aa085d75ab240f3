"""What the training loop hands around: :class:`TrainState` (what a callback sees, the learning rate
of the last step included), :class:`TrainResult` (what the loop returns), the :class:`Objective`
protocol and the module that lets DDP see a model and its objective as one forward pass; and the
seeding of a step from ``(seed, rank, step)`` alone, which is what makes the step counter of a
checkpoint its whole RNG state (exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainResult:
    """What :func:`training_loop` returns.

    ``model``: the trained model (for a bridge, a bare backbone comes back wrapped in
    ``EpsParam``; its weights are trained in place). ``ema``: a separate copy holding the EMA weights, ready
    for ``sampler.sample``. ``losses``: the rank-averaged loss of every step since step 0
    (restored from the checkpoint when resumed). ``steps``, ``samples_seen``: global counters.
    """

    model: nn.Module
    ema: nn.Module
    losses: list[float]
    steps: int
    samples_seen: int
    run_dir: Path | None


class Objective(Protocol):
    """What ``training_loop`` minimises. ``prepare(model)`` may wrap the model (a bridge wraps a bare
    backbone as ε-parameterization); ``loss(model, *pair, generator=, time_generator=)`` is the scalar
    loss of one micro-batch, ``pair`` being what ``pair_fn`` returned; ``describe()`` goes to config.json."""

    def prepare(self, model: nn.Module) -> nn.Module: ...

    def loss(self, model: nn.Module, *pair, generator: torch.Generator,
             time_generator: torch.Generator) -> torch.Tensor: ...

    def describe(self) -> dict: ...


class ObjectiveModule(nn.Module):
    """The model and its objective as one module, so DDP sees the whole forward pass (and the model keeps
    its own type and methods)."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, pair, generator, time_generator):
        return self.objective.loss(self.model, *pair, generator=generator, time_generator=time_generator)


@dataclass(frozen=True)
class TrainState:
    """What a ``callback`` sees: global counters, the model being trained and its EMA copy, the losses
    so far (rank-averaged), the run folder, this rank's device and ``lr``, the learning rate of the last
    step (``TrainSettings.lr_at(step − 1)``). Called on every rank: sample with
    ``ema`` and write files on rank 0 only (``dist.is_main()``)."""

    step: int
    samples_seen: int
    model: nn.Module
    ema: nn.Module
    losses: list[float]
    run_dir: Path | None
    device: torch.device
    lr: float


def step_seeds(seed: int, rank: int, step: int) -> list[int]:
    """Three independent 63-bit seeds for step ``step`` on rank ``rank`` (NumPy's SeedSequence mixing)."""
    return [int(s) >> 1 for s in np.random.SeedSequence([seed, rank, step]).generate_state(3, dtype=np.uint64)]


def seed_step(seed: int, rank: int, step: int, gen_t: torch.Generator, gen: torch.Generator,
               device: torch.device) -> None:
    """Seed this step's random streams from (seed, rank, step) alone: the step counter is the RNG state."""
    seed_t, seed_data, seed_global = step_seeds(seed, rank, step)
    gen_t.manual_seed(seed_t)
    gen.manual_seed(seed_data)
    torch.random.default_generator.manual_seed(seed_global)  # dropout and other global-RNG users
    if device.type == "cuda":
        torch.cuda.manual_seed(seed_global)
