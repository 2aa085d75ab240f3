"""Plain supervised training through the one loop: the auxiliary networks (digit classifier, degradation
estimator, Noise-I2SB's denoiser) train with :func:`fit_supervised`, the same seeding, checks and
(under torchrun) DDP as the bridge, only the loss differs (:class:`SupervisedObjective`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils.data import TensorDataset

PairFn = Callable[[torch.Tensor, torch.Generator], tuple]


class SupervisedObjective:
    """A plain supervised loss for the auxiliary networks: ``loss_fn(model, *pair) -> scalar``.

    ``pair_fn`` returns whatever ``loss_fn`` needs after the model (inputs and targets;
    noise drawn from the generator it was given). ``name`` goes into config.json.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], name: str = "supervised") -> None:
        self.loss_fn, self.name = loss_fn, name

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def loss(self, model, *pair, generator, time_generator):
        return self.loss_fn(model, *pair)

    def describe(self) -> dict:
        return {"kind": "supervised", "name": self.name}


def fit_supervised(model: nn.Module, n: int, pair_fn: PairFn, loss_fn: Callable[..., torch.Tensor], *, steps: int,
                   batch_size: int, lr: float, seed: int, device: str | torch.device, name: str,
                   progress: bool = True) -> nn.Module:
    """A small supervised fit through :func:`training_loop` (the auxiliary networks: digit classifier,
    degradation estimator, Noise's denoiser): shuffled batches of row indices ``0 … n−1``,
    ``pair_fn(rows, generator)`` → ``loss_fn(model, *pair)``, Adam, no EMA. Returns ``model`` in eval mode."""
    from .train import training_loop  # (train re-exports this module's names: imported here, not above)

    result = training_loop(model=model, dataset=TensorDataset(torch.arange(n)), pair_fn=pair_fn,
                           objective=SupervisedObjective(loss_fn, name), total_steps=steps, batch_size=batch_size,
                           lr=lr, ema_decay=0.0, seed=seed, device=str(device), log_every=10**9,
                           progress=name if progress else False)
    return result.model.eval()
