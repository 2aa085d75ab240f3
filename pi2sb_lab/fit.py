"""Small supervised fits beside the bridge: the digit classifier, the degradation estimator, the
Noise-I2SB denoiser. Each is seeded so that its result depends on ``seed`` alone."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm


def seeded_init(build: Callable[[], nn.Module], seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(device)


def fit_steps(model: nn.Module, batch_loss: Callable[[torch.Generator], torch.Tensor], *, steps: int, lr: float,
              seed: int, desc: str, progress: bool = True) -> nn.Module:
    """Adam for ``steps`` steps on ``batch_loss(generator)``; every batch is drawn from one generator seeded
    with ``seed``. Returns ``model`` in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        loss = batch_loss(generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()
