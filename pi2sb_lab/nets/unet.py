"""One configurable U-Net for every image experiment (ADM-style, Dhariwal & Nichol 2021).

The backbone behind I2SB's ε-network (I2SB §5 "Model": a U-Net, ADM at scale)
and P-I2SB's predictor, from the 32×32 MNIST toy (P-I2SB §4.3) up to 512×512
faces. It knows nothing of what its output means; a parameterization object
wraps it (docs/design.md, "One network signature").

Interface, shared by every backbone of the project::

    model(x_t, t, cond=None) -> Tensor  # (B, out_channels, H, W)

``x_t``  ``(B, in_channels, H, W)``; ``H`` and ``W`` divisible by
         ``2 ** (len(channel_mult) - 1)``. ``in_channels`` is whatever the
         hashing strategy produces (Cat-I2SB doubles it, P-I2SB eq. 11).
``t``    continuous time in ``[0, 1]`` (0 = clean, 1 = degraded), a scalar or
         shape ``(B,)``.
``cond`` the project's one schema (``nets/cond.py``): None, an image
         ``(B, cond_channels, H, W)`` concatenated to ``x_t`` on the channel axis
         (Palette-style conditioning on the degraded image), or a dict with
         ``"image"`` and/or ``"degradation"`` ``(B, degradation_dim)`` (e.g.
         P-I2SB eq. 19's σ, r, δ, q, embedded by an MLP and added to the time
         embedding). Every condition the model was built for must be given and
         no other.

``attention_resolutions`` are **feature-map side lengths in pixels** at the
construction-time ``image_size`` (e.g. ``{32, 16, 8}`` for ADM at 512²), not
downsample factors. Self-attention is placed after each residual block of a
level whose resolution is in the set (and always in the middle block).

Named configurations live in :data:`CONFIGS`; ``UNet.from_config("tiny")``.
(Longer than ~350 lines: one configurable network with its blocks and named configs.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .cond import parse_cond
from .embedding import TimeEmbedding

__all__ = ["CONFIGS", "UNet"]

CONFIGS: dict[str, dict[str, Any]] = {
    # 32×32 MNIST toy (P-I2SB §4.3 uses a "lightweight model"): levels 32/16/8 with
    # 16/32/64 channels, attention at 8×8; 0.72M parameters. Convolutions dominate:
    # a batch-64 forward+backward is ~37 GFLOP, ~0.4 s on 2 CPU cores.
    "tiny": dict(
        in_channels=1,
        out_channels=1,
        model_channels=16,
        channel_mult=(1, 2, 4),
        num_res_blocks=1,
        attention_resolutions=(8,),
        dropout=0.0,
        image_size=32,
        num_heads=4,
        norm_groups=8,
    ),
    # The MNIST ablation's default (P-I2SB §4.3 / Table 3 on 2 CPU cores, toy/mnist.py):
    # levels 32/16/8 with 8/16/16 channels, attention only in the middle block; 73k
    # parameters (74k with Cat's two channels and both conditions). One thread, batch 32:
    # a training step takes 115–150 ms (~4 ms per sample), against ~8 ms per sample at
    # tiny's width 16 with the same levels, and ~10 ms for "tiny" itself; after 300 steps
    # both widths gave the same digit accuracy (0.965 on 256 test digits, Vanilla-I2SB).
    "mnist-fast": dict(
        in_channels=1,
        out_channels=1,
        model_channels=8,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(),
        dropout=0.0,
        image_size=32,
        num_heads=4,
        norm_groups=8,
    ),
    # 512×512 faces, ADM-like (ADM's 512 model: channel_mult (0.5,1,1,2,2,4,4), 2 res
    # blocks, attention at 32/16/8, 64-channel heads). Base width 128 instead of
    # ADM's 256 keeps it at 126M parameters instead of 505M. Unlike ADM, resolution
    # changes by strided conv / nearest+conv, not by residual up/down blocks.
    "adm512": dict(
        in_channels=3,
        out_channels=3,
        model_channels=128,
        channel_mult=(0.5, 1, 1, 2, 2, 4, 4),
        num_res_blocks=2,
        attention_resolutions=(32, 16, 8),
        dropout=0.0,
        image_size=512,
        num_head_channels=64,
        norm_groups=32,
    ),
}


def _group_norm(channels: int, max_groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count ``<= max_groups`` that divides ``channels``."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm→SiLU→conv, scale-shift injection of the embedding, GroupNorm→SiLU→dropout→conv, + skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, *, dropout: float, norm_groups: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_ch, norm_groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _group_norm(out_ch, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))  # block starts as identity
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the ``H·W`` positions of a feature map, residual."""

    def __init__(self, channels: int, *, num_heads: int, norm_groups: int) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels are not divisible into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = _group_norm(channels, norm_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        # (B, heads, positions, head_dim) for scaled_dot_product_attention
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Module):
    """A list of layers applied in order, each given the embedding; optional gradient checkpointing."""

    def __init__(self, layers: Iterable[nn.Module], *, use_checkpoint: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, emb, use_reentrant=False)
            else:
                x = layer(x, emb)
        return x


class UNet(nn.Module):
    """ADM-style U-Net ``(x_t, t, cond) -> (B, out_channels, H, W)``; see the module docstring.

    in_channels:           channels of ``x_t`` (after hashing).
    out_channels:          output channels (defaults to ``in_channels``).
    model_channels:        base width; level ``i`` has ``int(model_channels * channel_mult[i])``.
    channel_mult:          one multiplier per resolution level (fractions allowed, ADM-512 uses 0.5).
    num_res_blocks:        residual blocks per level on the way down (one more on the way up).
    attention_resolutions: feature-map side lengths (pixels, at ``image_size``) that get self-attention.
    dropout:               dropout inside residual blocks.
    image_size:            the training resolution; only used to place attention.
    cond_channels:         channels of the concatenated condition image (0 = none).
    degradation_dim:       length of the degradation-parameter vector (0 = none).
    num_heads:             attention heads (ignored when ``num_head_channels`` is set).
    num_head_channels:     channels per attention head (ADM-style), or ``None``.
    use_checkpoint:        gradient checkpointing of every block (saves memory at 512²).
    norm_groups:           at most this many GroupNorm groups (the largest divisor is used).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int | None = None,
        model_channels: int = 32,
        channel_mult: tuple[float, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Iterable[int] = (8,),
        dropout: float = 0.0,
        image_size: int = 32,
        cond_channels: int = 0,
        degradation_dim: int = 0,
        num_heads: int = 4,
        num_head_channels: int | None = None,
        use_checkpoint: bool = False,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        channel_mult = tuple(channel_mult)
        attention_resolutions = tuple(sorted({int(r) for r in attention_resolutions}, reverse=True))
        if in_channels < 1 or out_channels < 1 or cond_channels < 0 or degradation_dim < 0:
            raise ValueError(
                f"need in_channels >= 1, out_channels >= 1, cond_channels >= 0, degradation_dim >= 0; got "
                f"{in_channels}, {out_channels}, {cond_channels}, {degradation_dim}"
            )
        if not channel_mult:
            raise ValueError("channel_mult must have at least one level")
        if image_size % 2 ** (len(channel_mult) - 1):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{len(channel_mult) - 1}")
        # Kept so that checkpoint.py can store it and rebuild the model with UNet(**config).
        self.config: dict[str, Any] = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_resolutions=attention_resolutions,
            dropout=dropout,
            image_size=image_size,
            cond_channels=cond_channels,
            degradation_dim=degradation_dim,
            num_heads=num_heads,
            num_head_channels=num_head_channels,
            use_checkpoint=use_checkpoint,
            norm_groups=norm_groups,
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.cond_channels, self.degradation_dim = cond_channels, degradation_dim
        self.num_levels = len(channel_mult)

        emb_dim = 4 * model_channels
        self.time_embed = TimeEmbedding(emb_dim, freq_dim=model_channels)
        self.degradation_embed = (
            nn.Sequential(nn.Linear(degradation_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            if degradation_dim
            else None
        )

        def heads(ch: int) -> int:
            return max(1, ch // num_head_channels) if num_head_channels else num_heads

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, emb_dim, dropout=dropout, norm_groups=norm_groups)

        def attn(ch: int) -> SelfAttention:
            return SelfAttention(ch, num_heads=heads(ch), norm_groups=norm_groups)

        widths = [max(1, int(model_channels * m)) for m in channel_mult]
        ch = widths[0]
        self.input_conv = nn.Conv2d(in_channels + cond_channels, ch, 3, padding=1)
        skip_channels = [ch]
        resolution = image_size
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, width)]
                ch = width
                if resolution in attention_resolutions:
                    layers.append(attn(ch))
                self.down.append(Stage(layers, use_checkpoint=use_checkpoint))
                skip_channels.append(ch)
            if level < self.num_levels - 1:
                self.down.append(Stage([Downsample(ch)], use_checkpoint=False))
                skip_channels.append(ch)
                resolution //= 2

        self.middle = Stage([res(ch, ch), attn(ch), res(ch, ch)], use_checkpoint=use_checkpoint)

        self.up = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            width = widths[level]
            for block in range(num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), width)]
                ch = width
                if resolution in attention_resolutions:
                    layers.append(attn(ch))
                if level > 0 and block == num_res_blocks:
                    layers.append(Upsample(ch))
                    resolution *= 2
                self.up.append(Stage(layers, use_checkpoint=use_checkpoint))

        self.out = nn.Sequential(
            _group_norm(ch, norm_groups),
            nn.SiLU(),
            _zero(nn.Conv2d(ch, out_channels, 3, padding=1)),  # the untrained model outputs 0
        )

    # ------------------------------------------------------------------ configs

    @classmethod
    def from_config(cls, name: str, **overrides: Any) -> UNet:
        """Build a named configuration from :data:`CONFIGS`, with keyword overrides."""
        if name not in CONFIGS:
            raise ValueError(f"unknown UNet config {name!r}; valid names: {sorted(CONFIGS)}")
        return cls(**{**CONFIGS[name], **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> UNet:
        """The 32×32 MNIST configuration (``from_config("tiny", ...)``)."""
        return cls.from_config("tiny", **overrides)

    @classmethod
    def adm512(cls, **overrides: Any) -> UNet:
        """The ADM-like 512×512 face configuration (``from_config("adm512", ...)``)."""
        return cls.from_config("adm512", **overrides)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float, cond: Any = None) -> torch.Tensor:
        if x_t.ndim != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(f"x_t must be (B, {self.in_channels}, H, W), got {tuple(x_t.shape)}")
        batch, _, height, width = x_t.shape
        factor = 2 ** (self.num_levels - 1)
        if height % factor or width % factor:
            raise ValueError(f"x_t spatial size {height}x{width} must be divisible by {factor}")
        image, degradation = parse_cond(cond, batch=batch, image_shape=(self.cond_channels, height, width)
                                        if self.cond_channels else None, degradation_dim=self.degradation_dim,
                                        owner="UNet")

        t = torch.as_tensor(t, device=x_t.device)
        if t.numel() not in (1, batch):
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
        emb = self.time_embed(t.reshape(-1).float(), batch)
        if self.degradation_embed is not None:
            emb = emb + self.degradation_embed(degradation.to(emb.dtype))

        h = x_t if image is None else torch.cat([x_t, image.to(x_t.dtype)], dim=1)
        h = self.input_conv(h)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for stage in self.up:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
