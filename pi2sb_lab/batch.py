"""Batched data, ``(B, ...)``: per-sample coefficients broadcast against it, seeded noise shaped like it.

Shared by the bridge (``bridge.py``, ``sampler.py``, ``parameterization.py``) and the VP
baselines (``diffusion/``): a time ``t`` is a scalar or one per sample, ``(B,)``, and every
coefficient of ``t`` (σ_t, α_t, a step's weights) meets the data through :func:`expand_like`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["expand_like", "randn_like"]


def expand_like(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample ``(B,)`` coefficient against data of shape ``(B, ...)``."""
    coef = coef.to(device=like.device, dtype=like.dtype)
    if coef.ndim == 0:
        return coef
    if like.ndim == 0:
        raise ValueError(f"t has shape {tuple(coef.shape)} but the data is 0-d (one number, no batch axis): "
                         "give a scalar t, or data of shape (batch, ...)")
    if coef.ndim != 1 or coef.shape[0] != like.shape[0]:
        raise ValueError(
            f"t must be a scalar or have shape (batch,) = ({like.shape[0]},); got shape {tuple(coef.shape)}"
        )
    return coef.reshape(-1, *([1] * (like.ndim - 1)))


def randn_like(x: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device so seeds reproduce.

    ``generator`` may also be a sequence of generators, one per sample along dim 0: each
    sample's noise then depends on its own generator alone, whatever batch it sits in.
    """
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)
    return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device).to(x.device)
                        for g in generator])
