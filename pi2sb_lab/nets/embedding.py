"""Embeddings of continuous time ``t ∈ [0, 1]`` shared by every backbone."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style features of continuous time.

    ``t``: shape ``(B,)`` (or a scalar, broadcast to one row) with values in [0, 1].
    Returns ``(B, dim)``. Time is scaled by 1000 first so that the frequencies
    resolve the same spacing a 1000-step discrete model would see.
    """
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimeEmbedding(nn.Module):
    """Sinusoidal features followed by a two-layer MLP: ``(B,) -> (B, out_dim)``."""

    def __init__(self, out_dim: int, *, freq_dim: int = 64) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.mlp[0].weight.device).reshape(-1)
        if batch is not None and t.numel() == 1:
            t = t.expand(batch)
        return self.mlp(sinusoidal_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))
