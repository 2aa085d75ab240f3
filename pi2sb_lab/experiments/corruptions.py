"""Hendrycks-style corruptions of digits, five severities each: the "unseen" degradations of ODEdit's Table 1.

Hendrycks & Dietterich (2019) define each corruption at severities 1–5; at 32×32 we take
the parameters of their CIFAR-10-C variant (the same resolution), and ODEdit §4.1's two
masks (random pixels, vertical lines, both with random colours, the mask unknown to the
restorer). No model in this project is trained on any of them: the VP prior sees clean
digits only.

=============  =================================================  ==========================
name           what (images in [−1, 1]; parameters on [0, 1])      severity 1 … 5
=============  =================================================  ==========================
``noise``      additive Gaussian noise of std c                   c = .04 .06 .08 .09 .10
``blur``       Gaussian blur of std σ pixels                      σ = .4 .6 .7 .8 1.0
``pixelate``   box down to a fraction f of the side, nearest up   f = .95 .9 .85 .75 .65
``contrast``   (x − mean) · c + mean                              c = .75 .5 .4 .3 .15
``jpeg``       libjpeg at quality q                               q = 80 65 58 50 40
``pixels``     a fraction p of pixels set to random grey levels   p = .05 .1 .2 .3 .4
``lines``      a fraction p of columns set to random grey levels  p = .05 .1 .2 .3 .4
=============  =================================================  ==========================
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._degrade_ops import check_image, filter2d_separable, jpeg_roundtrip

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "check_corruptions"]

SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "noise": (0.04, 0.06, 0.08, 0.09, 0.10),   # CIFAR-10-C gaussian_noise
    "blur": (0.4, 0.6, 0.7, 0.8, 1.0),         # CIFAR-10-C gaussian_blur
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # CIFAR-10-C pixelate
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),   # CIFAR-10-C contrast
    "jpeg": (80, 65, 58, 50, 40),              # CIFAR-10-C jpeg_compression
    "pixels": (0.05, 0.1, 0.2, 0.3, 0.4),      # ODEdit §4.1: random pixels, random colours
    "lines": (0.05, 0.1, 0.2, 0.3, 0.4),       # ODEdit §4.1: vertical lines, random colours
}


def check_corruptions(names) -> list[str]:
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(f"unknown corruption(s) {unknown or names}; valid names: {', '.join(CORRUPTIONS)}")
    return names


def _unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def _signed(u: torch.Tensor) -> torch.Tensor:
    return (u.clamp(0, 1) * 2 - 1)


def corrupt(x: torch.Tensor, name: str, severity: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` in [−1, 1] corrupted by ``name`` at ``severity`` (1–5); same shape, in [−1, 1].
    Random draws (noise, masks, colours) come from ``generator`` (on the CPU)."""
    check_image(x)
    check_corruptions([name])
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {list(SEVERITIES)}; got {severity!r}")
    c = CORRUPTIONS[name][severity - 1]
    u = _unit(x)
    rand = lambda *shape: torch.rand(shape, generator=generator).to(x)  # noqa: E731
    if name == "noise":
        return _signed(u + c * torch.randn(x.shape, generator=generator).to(x))
    if name == "blur":
        radius = max(1, math.ceil(3 * c))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / c) ** 2)
        return _signed(filter2d_separable(u, kernel / kernel.sum()))
    if name == "pixelate":
        h, w = x.shape[-2:]
        small = F.interpolate(u, size=(max(1, round(h * c)), max(1, round(w * c))), mode="area")
        return _signed(F.interpolate(small, size=(h, w), mode="nearest"))
    if name == "contrast":
        mean = u.mean(dim=(1, 2, 3), keepdim=True)
        return _signed((u - mean) * c + mean)
    if name == "jpeg":
        return jpeg_roundtrip(x, int(c))
    b, ch, h, w = x.shape
    if name == "pixels":
        mask = rand(b, 1, h, w) < c
        return torch.where(mask, _signed(rand(b, ch, h, w)), x)
    mask = (rand(b, 1, 1, w) < c).expand(b, 1, h, w)                     # "lines": whole columns
    return torch.where(mask, _signed(rand(b, ch, 1, w).expand(b, ch, h, w)), x)
