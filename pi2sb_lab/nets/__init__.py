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
        net = build()
    # one built under ``torch.device("meta")`` (shapes only, e.g. to count FLOPs) has no data to move
    return net if any(p.is_meta for p in net.parameters()) else net.to(device)


@torch.no_grad()
def predict_in_chunks(net: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                      batch_size: int, dtype: torch.dtype | None = None,
                      out_device: torch.device | str | None = None) -> torch.Tensor:
    """``fn`` over ``x`` in chunks of ``batch_size`` rows, concatenated: in eval mode and without grad,
    each chunk moved to ``net``'s device (and ``dtype``, if given), each output to ``out_device``
    (default: ``x``'s device). ``net``'s train/eval mode is restored afterwards. Whole test sets
    through a small network without holding every activation at once."""
    device = next(net.parameters()).device
    out_device = x.device if out_device is None else out_device
    was_training = net.training
    net.eval()
    try:
        return torch.cat([fn(chunk.to(device, dtype)).to(out_device) for chunk in x.split(batch_size)])
    finally:
        net.train(was_training)
