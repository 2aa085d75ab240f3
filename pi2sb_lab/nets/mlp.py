"""A time-conditioned residual MLP for the 2D toys: ``model(x_t, t, cond=None)``.

``cond`` follows the project's one schema (``nets/cond.py``, the U-Net's too):
None, the "image" condition ``(N, cond_dim)`` (e.g. the LQ point ``y``), or a
dict with ``"image"`` and/or ``"degradation"`` ``(N, degradation_dim)`` (e.g.
``DegradationParams2D.as_vector()``); both are concatenated to the input. A net
built with a condition requires it on every call, and a condition it was not
built for is an error.
"""

from __future__ import annotations

import torch
from torch import nn

from .cond import parse_cond
from .embedding import TimeEmbedding

__all__ = ["MLP2D", "ResidualBlock"]


class ResidualBlock(nn.Module):
    """``h + W₂ SiLU(W₁ SiLU(LN h) + P t_emb)``: a pre-norm residual block with the time added inside."""

    def __init__(self, hidden: int, time_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.time_proj = nn.Linear(time_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        z = self.fc1(self.act(self.norm(h))) + self.time_proj(t_emb)
        return h + self.fc2(self.act(z))


class MLP2D(nn.Module):
    """Residual MLP ``(x_t (N, dim), t, cond) -> (N, out_dim or dim)``.

    ``dim``: the state dimension (2 for points; ``Cat`` doubles it, use
    ``strategy.channels(2)``); ``hidden`` / ``depth``: width and number of
    residual blocks; ``time_dim``: width of the time embedding added in every
    block; ``cond_dim``: width of the concatenated "image" condition (0 = none);
    ``degradation_dim``: width of the concatenated "degradation" vector
    (0 = none); ``out_dim``: output width, ``dim`` by default.

    ``t`` is continuous time in [0, 1], shape ``(N,)``, ``(N, 1)`` or a scalar.
    """

    def __init__(
        self,
        dim: int = 2,
        *,
        hidden: int = 128,
        depth: int = 3,
        time_dim: int = 64,
        cond_dim: int = 0,
        degradation_dim: int = 0,
        out_dim: int | None = None,
    ) -> None:
        super().__init__()
        if min(dim, hidden, time_dim) < 1 or depth < 0 or min(cond_dim, degradation_dim) < 0:
            raise ValueError(
                f"need dim, hidden, time_dim >= 1 and depth, cond_dim, degradation_dim >= 0; got "
                f"dim={dim}, hidden={hidden}, time_dim={time_dim}, depth={depth}, "
                f"cond_dim={cond_dim}, degradation_dim={degradation_dim}"
            )
        self.dim = dim
        self.cond_dim = cond_dim
        self.degradation_dim = degradation_dim
        self.out_dim = dim if out_dim is None else out_dim
        self.time_embed = TimeEmbedding(time_dim)
        self.inp = nn.Linear(dim + cond_dim + degradation_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, time_dim) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, self.out_dim))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float, cond=None) -> torch.Tensor:
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape (N, {self.dim}); got {tuple(x_t.shape)}")
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.numel() not in (1, n):
            raise ValueError(f"t must be a scalar or have N={n} entries; got shape {tuple(t.shape)}")

        image, degradation = parse_cond(cond, batch=n, image_shape=(self.cond_dim,) if self.cond_dim else None,
                                        degradation_dim=self.degradation_dim, owner="MLP2D")
        h = torch.cat([x_t, *(c.to(x_t) for c in (image, degradation) if c is not None)], dim=1)

        t_emb = self.time_embed(t, batch=n)
        h = self.inp(h)
        for block in self.blocks:
            h = block(h, t_emb)
        return self.out(h)
