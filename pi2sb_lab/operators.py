"""I2SB's fixed degradation operators (I2SB §5 and App. D): SR×4, blur, JPEG, inpainting.

Unlike P-I2SB's blind eq. 19 (``degrade.py``), each operator is one fixed map
``x -> y`` (a random mask for free-form inpainting), the non-blind restoration
tasks I2SB reports on. Images are float NCHW in [-1, 1]; outputs keep the
input's shape (degraded images are resized back, as I2SB transports between
images of one size).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

from ._degrade_ops import check_image, filter2d_separable, freeform_mask, jpeg_roundtrip

__all__ = ["OperatorResult", "sr4x_pool", "sr4x_bicubic", "blur_uniform", "blur_gaussian", "jpeg", "inpaint_center",
           "freeform_masks", "inpaint_freeform", "I2SB_OPERATORS", "get_operator"]

@dataclass(frozen=True, eq=False)
class OperatorResult:
    """Output of an I2SB operator: ``y`` (B, C, H, W), and for inpainting ``mask`` (B, 1, H, W).

    ``mask`` is 1.0 on missing pixels, 0.0 elsewhere (Palette/I2SB convention); None otherwise.
    """

    y: torch.Tensor
    mask: torch.Tensor | None = None


def _check_divisible(x: torch.Tensor, factor: int) -> None:
    if x.shape[-2] % factor or x.shape[-1] % factor:
        raise ValueError(f"x height and width must be divisible by {factor}; got {tuple(x.shape[-2:])}")


def sr4x_pool(x: torch.Tensor, *, generator: torch.Generator | None = None) -> OperatorResult:
    """I2SB SR×4 "pool" (DDRM's filter): 4×4 average pooling, then nearest upsampling back to (H, W)."""
    check_image(x)
    _check_divisible(x, 4)
    return OperatorResult(F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest"))


def sr4x_bicubic(x: torch.Tensor, *, generator: torch.Generator | None = None) -> OperatorResult:
    """I2SB SR×4 "bicubic": antialiased bicubic (a = −0.5, 16 taps at ×4, DDRM's filter) down to
    (H/4, W/4), then nearest upsampling back as I2SB does. Borders renormalize the truncated
    kernel instead of DDRM's mirroring, a difference confined to the outer 8 pixels."""
    check_image(x)
    _check_divisible(x, 4)
    small = F.interpolate(x, scale_factor=0.25, mode="bicubic", align_corners=False, antialias=True)
    return OperatorResult(F.interpolate(small, scale_factor=4, mode="nearest").clamp(-1, 1))


def blur_uniform(x: torch.Tensor, *, generator: torch.Generator | None = None, size: int = 9) -> OperatorResult:
    """I2SB "blur-uni": a ``size``×``size`` box filter (9 as in DDRM/I2SB), separable, mirror-padded.

    DDRM's matrix builder (which I2SB reuses) loops over one tap too few and pads
    with zeros, so its "9-tap" box keeps 8 taps and darkens (8/9 per axis); this is
    the intended normalized box, which maps a constant image to itself.
    """
    check_image(x)
    kernel = torch.full((size,), 1.0 / size, dtype=torch.float64)
    return OperatorResult(filter2d_separable(x, kernel))


def blur_gaussian(
    x: torch.Tensor, *, generator: torch.Generator | None = None, sigma: float = 10.0, size: int = 5
) -> OperatorResult:
    """I2SB "blur-gauss": separable Gaussian, mirror-padded.

    Default σ = 10 over 5 taps is what the released DDRM and I2SB code build for
    this task (a nearly flat 5-tap kernel, normalized here over all 5 taps; see
    :func:`blur_uniform` for the dropped tap). The σ = 3, 61-tap kernel often
    quoted for "Gaussian deblurring" is DPS's: pass ``sigma=3.0, size=61``.
    """
    check_image(x)
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return OperatorResult(filter2d_separable(x, kernel / kernel.sum()))


def jpeg(x: torch.Tensor, *, generator: torch.Generator | None = None, quality: int = 10) -> OperatorResult:
    """I2SB JPEG restoration input: the real libjpeg codec at ``quality`` (I2SB used DDRM-JPEG's
    differentiable emulation; the codec is the real thing and needs no gradient here)."""
    check_image(x)
    return OperatorResult(jpeg_roundtrip(x, quality))


def _fill_holes(x: torch.Tensor, mask: torch.Tensor, fill: float) -> OperatorResult:
    mask = mask.to(dtype=x.dtype, device=x.device)
    return OperatorResult(x * (1 - mask) + fill * mask, mask)


def inpaint_center(
    x: torch.Tensor, *, generator: torch.Generator | None = None, fill: float = 1.0
) -> OperatorResult:
    """I2SB "center" inpainting: the central (H/2)×(W/2) square (a quarter of the area) set to
    ``fill`` (1.0 = white, as I2SB does)."""
    check_image(x)
    B, _, H, W = x.shape
    mask = torch.zeros(B, 1, H, W)
    mask[..., H // 4 : H // 4 + H // 2, W // 4 : W // 4 + W // 2] = 1
    return _fill_holes(x, mask, fill)


def freeform_masks(
    batch: int,
    height: int,
    width: int,
    coverage: tuple[float, float] = (0.1, 0.2),
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, 1, H, W) float masks of seeded brush strokes (1 = missing), each covering a fraction in
    ``coverage``. Stands in for Palette's 10,000 stored masks that I2SB samples from."""
    lo, hi = coverage
    if not 0.0 <= lo <= hi < 1.0:
        raise ValueError(f"coverage must be (lo, hi) with 0 <= lo <= hi < 1; got {coverage}")
    seeds = torch.randint(0, 2**62, (batch,), generator=generator, device="cpu" if generator is None
                          else generator.device).tolist()
    return torch.stack([freeform_mask(height, width, coverage, s) for s in seeds])[:, None].float()


def inpaint_freeform(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    coverage: tuple[float, float] = (0.1, 0.2),
    fill: float = 1.0,
) -> OperatorResult:
    """I2SB "freeform" inpainting: brush-stroke holes covering ``coverage`` of each image, set to ``fill``."""
    check_image(x)
    B, _, H, W = x.shape
    return _fill_holes(x, freeform_masks(B, H, W, coverage, generator=generator), fill)


# Every entry is called as ``op(x, generator=None) -> OperatorResult`` (I2SB Sec. 4 tasks, App. C.1).
I2SB_OPERATORS: dict[str, Callable[..., OperatorResult]] = {
    "sr4x-pool": sr4x_pool,
    "sr4x-bicubic": sr4x_bicubic,
    "blur-uni": blur_uniform,
    "blur-gauss": blur_gaussian,
    "jpeg-5": partial(jpeg, quality=5),
    "jpeg-10": partial(jpeg, quality=10),
    "inpaint-center": inpaint_center,
    "inpaint-freeform1020": partial(inpaint_freeform, coverage=(0.1, 0.2)),
    "inpaint-freeform2030": partial(inpaint_freeform, coverage=(0.2, 0.3)),
}


def get_operator(name: str) -> Callable[..., OperatorResult]:
    """The I2SB operator called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in I2SB_OPERATORS:
        raise ValueError(f"unknown I2SB operator {name!r}; valid names: {sorted(I2SB_OPERATORS)}")
    return I2SB_OPERATORS[name]
