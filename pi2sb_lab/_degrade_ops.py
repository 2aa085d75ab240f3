"""Low-level image operations behind :mod:`pi2sb_lab.degrade` (private; import from there).

Everything takes and returns float tensors in [-1, 1], NCHW, and runs on the
tensor's own device, except the JPEG codec (libjpeg on the CPU, nvjpeg on CUDA):
input checks, colour, 8-bit rounding, both JPEG codecs and the free-form masks. Blur and
resampling live in ``_blur.py`` (re-exported here, the one toolbox eq. 19 and I2SB's
operators share).
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Sequence

import torch

from ._blur import (  # noqa: F401  (blur and resampling live there; these names stay importable from here)
    blur_resize_isotropic,
    blur_resize_matrix,
    filter2d_per_sample,
    filter2d_separable,
    gaussian_kernels,
    pad_reflect,
    resize_bilinear,
)

# Luma weights of ITU-R BT.601, the ones cv2.COLOR_BGR2GRAY uses (GFPGAN's gray step).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# Values a little outside [-1, 1] come from harmless float rounding (e.g. bf16, or an
# upstream resize); anything beyond this is a caller passing [0, 1] or [0, 255] images.
RANGE_TOLERANCE = 1e-3


def check_image(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a float (B, C, H, W) tensor, C ∈ {1, 3}, values in [-1, 1]."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        got = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor with values in [-1, 1]; got {got}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W); got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (dim 1); got {x.shape[1]} in shape {tuple(x.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{name} must have height and width >= 1; got shape {tuple(x.shape)}")
    if x.numel():
        lo, hi = (v.item() for v in torch.aminmax(x))  # one pass over the batch, not two
        if not (lo >= -1 - RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
            raise ValueError(
                f"{name} must have values in [-1, 1] (tolerance {RANGE_TOLERANCE:g}); got [{lo:g}, {hi:g}]"
            )


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (theory checks); every other float type is processed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# --------------------------------------------------------------------------- resize, colour, codec


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma copied to all three channels (a no-op for 1-channel images); same shape."""
    if x.shape[1] == 1:
        return x
    return luma(x).expand_as(x).contiguous()


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of (B, 3, H, W) colour images: (B, 1, H, W).

    The weighted channels summed in order, (r + g) + b: bitwise what ``(x * w).sum(dim=1)`` gives,
    without its strided reduction (slow on a channels-last image) and its 3-channel temporary.
    """
    w = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    out = x[:, 0:1] * w[:, 0:1]
    out += x[:, 1:2] * w[:, 1:2]
    out += x[:, 2:3] * w[:, 2:3]
    return out


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float → [0, 255] uint8, rounded to nearest (what saving an 8-bit file does)."""
    return x.clamp(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)  # in place on clamp's copy: one temporary


def from_uint8(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype).div_(127.5).sub_(1)


def quantize_8bit_(x: torch.Tensor) -> torch.Tensor:
    """Round ``x`` in place to the 256 levels of an 8-bit image (float, in [-1, 1]); returns ``x``.

    In place because at 512² a batch is tens of MB and each temporary costs as much as the arithmetic.
    """
    return x.clamp_(-1, 1).add_(1).mul_(127.5).round_().div_(127.5).sub_(1)


def quantize_8bit_into(out: torch.Tensor, x: torch.Tensor) -> None:
    """Write :func:`quantize_8bit_` of ``x`` into ``out`` (same shape; ``x`` is overwritten on the way),
    for ``x`` within [-1, 1] up to float rounding (e.g. a bilinear resize of 8-bit levels).

    The rounding pass writes ``out``, so a channels-last ``x`` reaches a contiguous ``out`` without
    a separate layout-converting copy. No clamp pass: within 1/255 of [-1, 1] the rounding itself
    lands on the end levels (1 + ε → 255; −1 − ε → −0 → −1), bitwise what clamping first gives.
    """
    # In bands of rows of ~384 kB: the five passes then stay in cache (~25 % faster at 512², same numbers)
    rows = max(1, (384 << 10) // max(1, x[..., :1, :].numel() * x.element_size()))
    for i in range(0, x.shape[-2], rows):
        band = out[..., i : i + rows, :]
        torch.round(x[..., i : i + rows, :].add_(1).mul_(127.5), out=band)
        band.div_(127.5).sub_(1)


def jpeg_roundtrip(x: torch.Tensor, quality: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Encode and decode each image with libjpeg at its quality factor; same shape, device and dtype.

    ``x``: (B, C, H, W) in [-1, 1], C ∈ {1, 3}; ``quality``: one int in [1, 100] or
    one per sample. The codec runs on the CPU (torchvision's encoder needs uint8
    CPU tensors for a reproducible libjpeg result), with 4:2:0 chroma subsampling
    like cv2.imencode's default.
    """
    B = x.shape[0]
    q = torch.as_tensor(quality).reshape(-1).tolist()
    if len(q) == 1:
        q = q * B
    if len(q) != B:
        raise ValueError(f"quality must be one int or one per sample ({B}); got {len(q)} values")
    if any(not (1 <= int(v) <= 100) for v in q):
        raise ValueError(f"quality must lie in [1, 100]; got {q}")
    from torchvision.io import decode_jpeg, encode_jpeg

    images = to_uint8(x).cpu()
    out = torch.empty_like(images)
    with warnings.catch_warnings():
        # torchvision 0.29 marks its codec deprecated in favour of TorchCodec; it still is libjpeg.
        warnings.filterwarnings("ignore", message=".*image decoding and encoding.*", category=DeprecationWarning)
        for b in range(B):
            out[b] = decode_jpeg(encode_jpeg(images[b], quality=int(q[b])))
    return from_uint8(out.to(x.device), x.dtype)


def jpeg_roundtrip_many(images: Sequence[torch.Tensor], qualities: Sequence[int], *,
                        codec: str = "auto") -> list[torch.Tensor]:
    """JPEG round trip of several ``(1, C, h, w)`` images of different sizes, each at its own quality.

    ``codec``: "cpu" — libjpeg per image (:func:`jpeg_roundtrip`); "cuda" — torchvision's
    nvjpeg codec on the GPU, batched: one encode call per distinct quality and one
    decode call for all (3-channel CUDA images only; others take the CPU path); "auto" —
    "cuda" for CUDA tensors, falling back to the CPU for good (with one warning) if this
    torchvision build cannot run it. nvjpeg is a different JPEG implementation from
    libjpeg: the same quality gives slightly different pixels.
    """
    if codec not in ("auto", "cpu", "cuda"):
        raise ValueError(f"codec must be 'auto', 'cpu' or 'cuda'; got {codec!r}")
    on_gpu = [k for k, im in enumerate(images) if im.is_cuda and im.shape[1] == 3]
    if codec == "cpu" or not on_gpu or (codec == "auto" and not _CUDA_JPEG["ok"]):
        return [jpeg_roundtrip(im, q) for im, q in zip(images, qualities)]
    out = list(images)
    try:
        out_gpu = _jpeg_cuda([images[k] for k in on_gpu], [int(qualities[k]) for k in on_gpu])
    except (RuntimeError, TypeError, NotImplementedError) as err:
        if codec == "cuda":
            raise
        _CUDA_JPEG["ok"] = False
        warnings.warn(f"torchvision's CUDA JPEG codec failed ({type(err).__name__}: {str(err)[:200]}); "
                      "JPEG runs on the CPU from now on", RuntimeWarning, stacklevel=2)
        return [jpeg_roundtrip(im, q) for im, q in zip(images, qualities)]
    for k, im in zip(on_gpu, out_gpu):
        out[k] = im
    for k in set(range(len(images))) - set(on_gpu):
        out[k] = jpeg_roundtrip(images[k], int(qualities[k]))
    return out


_CUDA_JPEG = {"ok": True}


def _jpeg_cuda(images: list[torch.Tensor], qualities: list[int]) -> list[torch.Tensor]:
    from torchvision.io import decode_jpeg, encode_jpeg

    encoded: list = [None] * len(images)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*image decoding and encoding.*", category=DeprecationWarning)
        for q in sorted(set(qualities)):  # encode_jpeg takes one quality per call
            idx = [k for k, v in enumerate(qualities) if v == q]
            data = encode_jpeg([to_uint8(images[k])[0] for k in idx], quality=q)
            for k, d in zip(idx, data):
                encoded[k] = d.cpu()  # decode_jpeg reads the bytes from host memory
        decoded = decode_jpeg(encoded, device=images[0].device)
    return [from_uint8(d[None], im.dtype) for d, im in zip(decoded, images)]


# --------------------------------------------------------------------------- masks


def freeform_mask(
    height: int,
    width: int,
    coverage: tuple[float, float],
    seed: int,
) -> torch.Tensor:
    """One free-form brush-stroke mask, bool (H, W), True = missing; hole fraction in ``coverage``.

    Strokes are random walks of a round brush (DeepFill-v2 style): each stroke
    has a random start, brush radius and 4–12 segments whose heading turns by
    up to ±60° per segment and bounces off the borders. The brush is stamped every half radius and drawing
    stops the moment the hole fraction reaches a target drawn uniformly from
    ``[lo, hi − one stamp]``, so the final fraction lies in ``[lo, hi]`` by
    construction. Python's ``random.Random(seed)`` drives it: identical on every
    platform and device.
    """
    lo, hi = coverage
    rng = random.Random(seed)
    mask = torch.zeros(height, width, dtype=torch.bool)
    side = min(height, width)
    r_min, r_max = max(1.0, 0.02 * side), max(1.0, 0.05 * side)
    stamp_fraction = math.pi * (r_max + 1) ** 2 / (height * width)  # upper bound on one stamp's area
    target = lo + rng.random() * max(0.0, hi - stamp_fraction - lo)
    need = math.ceil(target * height * width)
    filled = 0
    rows = torch.arange(height, dtype=torch.float32)[:, None]
    cols = torch.arange(width, dtype=torch.float32)[None, :]
    while filled < need:
        radius = rng.uniform(r_min, r_max)
        cy, cx = rng.uniform(0, height - 1), rng.uniform(0, width - 1)
        heading = rng.uniform(0, 2 * math.pi)
        for _ in range(rng.randint(4, 12)):
            heading += rng.uniform(-math.pi / 3, math.pi / 3)
            length = rng.uniform(0.05, 0.25) * side
            step = max(radius / 2, 0.5)
            for _ in range(max(1, int(length / step))):
                # Bounce off the borders rather than sliding along them.
                if not 0 <= cy + step * math.sin(heading) <= height - 1:
                    heading = -heading
                if not 0 <= cx + step * math.cos(heading) <= width - 1:
                    heading = math.pi - heading
                cy = min(max(cy + step * math.sin(heading), 0.0), height - 1.0)
                cx = min(max(cx + step * math.cos(heading), 0.0), width - 1.0)
                # Stamp a disk, touching only its bounding box.
                r0, r1 = max(0, int(cy - radius)), min(height, int(cy + radius) + 1)
                c0, c1 = max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
                disk = (rows[r0:r1] - cy) ** 2 + (cols[:, c0:c1] - cx) ** 2 <= radius**2
                window = mask[r0:r1, c0:c1]
                filled += int((disk & ~window).sum())
                window |= disk
                if filled >= need:
                    return mask
    return mask
