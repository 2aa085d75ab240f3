"""A time-conditioned residual MLP for the 2D toys: ``model(x_t, t, cond=None)``.

Conditioning follows the U-Net's convention (``nets/``): the condition is
concatenated to the input rather than injected elsewhere. ``cond`` is

- ``None`` for an unconditional net (built with ``cond_dim = degradation_dim = 0``);
- a tensor ``(N, cond_dim)``: the "image" condition, e.g. the LQ point ``y``;
- a dict with key ``"image"`` (alias ``"lq"``) → ``(N, cond_dim)`` and/or key
  ``"degradation"`` → ``(N, degradation_dim)``, a parameter vector such as
  ``DegradationParams2D.as_vector()`` (the same keys as the U-Net's).

A net built with a condition requires it on every call (pass zeros for a
dropped condition), and a condition the net was not built for is an error, so
a mis-wired experiment fails loudly instead of silently ignoring its input.
"""

from __future__ import annotations

import torch
from torch import nn

from pi2sb_lab.nets.embedding import TimeEmbedding

__all__ = ["MLP2D", "ResidualBlock"]

_IMAGE_KEYS = ("image", "lq")
_DEGRADATION_KEY = "degradation"


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

    def _split_cond(self, cond) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Return ``(image, degradation)`` from the accepted forms of ``cond``."""
        if cond is None:
            return None, None
        if isinstance(cond, torch.Tensor):
            return cond, None
        if isinstance(cond, dict):
            unknown = set(cond) - {*_IMAGE_KEYS, _DEGRADATION_KEY}
            if unknown:
                raise ValueError(
                    f"unknown cond keys {sorted(unknown)}; valid keys: 'image' (alias 'lq'), 'degradation'"
                )
            if all(k in cond for k in _IMAGE_KEYS):
                raise ValueError("give the image condition once, under 'image' or 'lq', not both")
            image = cond.get("image", cond.get("lq"))
            return image, cond.get(_DEGRADATION_KEY)
        raise ValueError(f"cond must be None, a Tensor or a dict; got {type(cond).__name__}")

    @staticmethod
    def _check_part(name: str, value: torch.Tensor | None, width: int, n: int, arg: str) -> None:
        if width == 0 and value is not None:
            raise ValueError(f"got a {name} condition but the net was built with {arg}=0")
        if width > 0 and value is None:
            raise ValueError(f"the net was built with {arg}={width} and needs a {name} condition of shape ({n}, {width})")
        if value is not None and tuple(value.shape) != (n, width):
            raise ValueError(f"{name} condition must have shape ({n}, {width}); got {tuple(value.shape)}")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float, cond=None) -> torch.Tensor:
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape (N, {self.dim}); got {tuple(x_t.shape)}")
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device)
        if t.numel() not in (1, n):
            raise ValueError(f"t must be a scalar or have N={n} entries; got shape {tuple(t.shape)}")

        image, degradation = self._split_cond(cond)
        self._check_part("image", image, self.cond_dim, n, "cond_dim")
        self._check_part("degradation", degradation, self.degradation_dim, n, "degradation_dim")
        h = torch.cat([x_t, *(c.to(x_t) for c in (image, degradation) if c is not None)], dim=1)

        t_emb = self.time_embed(t, batch=n)
        h = self.inp(h)
        for block in self.blocks:
            h = block(h, t_emb)
        return self.out(h)
