"""Networks: the backbones (``model(x_t, t, cond=None)`` shaped like ``x_t``: U-Net, 2D MLP) and the
small auxiliary networks of the MNIST study (digit classifier, degradation estimator, Noise-I2SB's
denoiser). All train through ``train.training_loop``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def seeded(build: Callable[[], nn.Module], seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's global RNG:
    the initialisation, like everything else in a run, depends on ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().to(device)
