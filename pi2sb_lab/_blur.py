"""Blur and bilinear resampling behind :mod:`pi2sb_lab.degrade` (private; eq. 19's x ⊗ k_σ and ↓_r).

The per-sample Gaussian kernels k_σ, mirror padding, the FFT blur, and the two exact routes to
blur-then-downsample that eq. 19 takes on a CPU: by FFT (anisotropic kernels, r near 1) and by
two banded matrix products (isotropic kernels). Float tensors in [-1, 1], NCHW, any device.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------- kernels, padding, FFT blur


def gaussian_kernels(
    kernel_size: int,
    sigma_x: torch.Tensor,
    sigma_y: torch.Tensor,
    theta: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalized bivariate Gaussian kernels k_σ of P-I2SB eq. 19, one per sample.

    ``sigma_x``, ``sigma_y``, ``theta``: shape (B,); the kernel's axes have standard
    deviations ``sigma_x`` (along the direction at angle ``theta``, radians,
    turning from the column axis towards the row axis) and ``sigma_y`` (across it), in
    pixels. Isotropic when ``sigma_x == sigma_y``. Returns (B, k, k), each summing
    to 1, on the device of ``sigma_x``. Entry ``[b, i, j]`` sits at row offset
    ``i - k//2`` and column offset ``j - k//2`` from the centre.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer; got {kernel_size}")
    sx, sy, th = (torch.as_tensor(v).to(dtype).reshape(-1, 1, 1) for v in (sigma_x, sigma_y, theta))
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, dtype=dtype, device=sx.device)
    rows, cols = offsets[:, None], offsets[None, :]
    # Coordinates in the kernel's own (rotated) frame: u along theta, v across it.
    u = cols * torch.cos(th) + rows * torch.sin(th)
    v = -cols * torch.sin(th) + rows * torch.cos(th)
    log_k = -0.5 * ((u / sx) ** 2 + (v / sy) ** 2)
    # Subtracting the max (0, at the centre) is free and keeps σ = 0.1 from underflowing to 0/0.
    k = torch.exp(log_k - log_k.amax(dim=(-2, -1), keepdim=True))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def pad_reflect(x: torch.Tensor, pad_h: int, pad_w: int | None = None) -> torch.Tensor:
    """Mirror padding (cv2's default BORDER_REFLECT_101) of the last two dims; edge replication
    along a dim too short to mirror (pad ≥ its size)."""
    pad_w = pad_h if pad_w is None else pad_w
    if 0 < pad_h < x.shape[-2] and 0 < pad_w < x.shape[-1]:
        return F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")  # the same values in one pass, not two
    if pad_w:
        x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w < x.shape[-1] else "replicate")
    if pad_h:
        x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect" if pad_h < x.shape[-2] else "replicate")
    return x


def _smooth_size(n: int) -> int:
    """Smallest m ≥ n with no prime factor above 5: pocketfft/cuFFT are several times faster there."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _fft_shape(H: int, W: int, kernel_size: int) -> tuple[int, int]:
    """Transform size for a k×k kernel: the linear convolution of the image mirror-padded by k//2 fits."""
    p = kernel_size // 2
    return _smooth_size(H + 2 * p), _smooth_size(W + 2 * p)


# On a CPU the FFT blur runs on as many samples at once as keep the spectrum within this (about
# the cache): one 512² colour image, hundreds of digits; at 512², 8 samples in one call cost 3× as
# much per sample.
FFT_CHUNK_BYTES = 4 << 20


def _fft_chunk(x: torch.Tensor, fh: int, fw: int) -> int:
    """Samples per FFT call: on a CPU as many as fit FFT_CHUNK_BYTES; a GPU wants the whole batch."""
    if x.device.type != "cpu":
        return max(1, x.shape[0])
    spectrum_bytes = x.shape[1] * fh * (fw // 2 + 1) * 2 * x.element_size()
    return max(1, FFT_CHUNK_BYTES // spectrum_bytes)


def filter2d_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve sample b of ``x`` (B, C, H, W) with ``kernels[b]`` (B, k, k), mirror-padded; same shape out.

    Done in the Fourier domain: a 41×41 kernel at 512² costs 1,681 multiply-adds
    per pixel directly but ~100 through the FFT, and on a GPU the per-sample kernels
    batch into one call. The image is mirror-padded by k//2 first, so the circular wrap
    of the FFT only touches the padding, never the H×W output.
    """
    B, C, H, W = x.shape
    p = kernels.shape[-1] // 2
    fh, fw = _fft_shape(H, W, kernels.shape[-1])
    step = _fft_chunk(x, fh, fw)
    # On a CPU, colour images come out channels-last, the layout resize_bilinear wants there: the crop
    # below then writes that layout directly, sparing the resize a conversion pass (the same numbers).
    out = torch.empty_like(x, memory_format=torch.channels_last if _cpu_colour(x) else torch.preserve_format)
    for start in range(0, B, step):
        rows = slice(start, start + step)
        # The FFT product is the linear convolution as long as fh, fw ≥ H + 2p; with the kernel
        # at [0, k) instead of centred, pixel (i, j) of the input lands at (i + 2p, j + 2p).
        spectrum = torch.fft.rfft2(pad_reflect(x[rows], p), s=(fh, fw))
        spectrum *= torch.fft.rfft2(kernels[rows].to(x.dtype), s=(fh, fw))[:, None]
        out[rows] = torch.fft.irfft2(spectrum, s=(fh, fw))[..., 2 * p : 2 * p + H, 2 * p : 2 * p + W]
    return out


def _pad_reflect_into(buffer: torch.Tensor, x: torch.Tensor, p: int) -> None:
    """Write ``pad_reflect(x[None], p)[0]`` into ``buffer[:, :H + 2p, :W + 2p]`` (``x``: (C, H, W)),
    with no padded temporary: the centre, then the mirrored bands (BORDER_REFLECT_101)."""
    C, H, W = x.shape
    if not (0 < p < H and 0 < p < W):
        buffer[:, : H + 2 * p, : W + 2 * p] = pad_reflect(x[None], p)[0]
        return
    buffer[:, p : p + H, p : p + W] = x
    rows = buffer[:, : H + 2 * p]  # (the bottom margin beyond stays untouched)
    rows[:, p : p + H, :p] = rows[:, p : p + H, p + 1 : 2 * p + 1].flip(-1)  # left: columns p..1 of x
    rows[:, p : p + H, p + W : W + 2 * p] = rows[:, p : p + H, W - 1 : p + W - 1].flip(-1)  # right: W-2..W-1-p
    rows[:, :p, : W + 2 * p] = rows[:, p + 1 : 2 * p + 1, : W + 2 * p].flip(-2)  # top, corners included
    rows[:, p + H : H + 2 * p, : W + 2 * p] = rows[:, H - 1 : p + H - 1, : W + 2 * p].flip(-2)  # bottom


# h = H // r takes a few hundred values at 512²: soon every one is cached (computing one costs a
# quarter of a millisecond). Callers only read the cached tensor.
@functools.lru_cache(maxsize=1024)
def bilinear_source_rows(n_in: int, n_out: int) -> torch.Tensor | None:
    """The sorted rows (indices along an axis of n_in) that :func:`resize_bilinear` to n_out reads;
    ``None`` when it reads every one.

    Output i reads rows ⌊s⌋ and ⌊s⌋ + 1 at s = (i + ½)·n_in/n_out − ½ (clamped to the axis); torch
    computes s in float32, so where that rounding could tip ⌊s⌋ both neighbours are taken.
    """
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    lo, hi = (src - 1e-3).floor(), (src + 1e-3).floor()
    rows = torch.cat([lo, hi, hi + 1]).long().clamp(0, n_in - 1).unique()
    return None if rows.numel() == n_in else rows


def blur_resize_fft(x: torch.Tensor, index: Sequence[int], kernels: torch.Tensor,
                    sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """``resize_bilinear(filter2d_per_sample(x[index], kernels)[j][None], sizes[j])`` for each j: the
    same numbers, for less work. ``kernels``: (len(index), k, k); returns (1, C, *sizes[j]) tensors.

    Each chunk of samples is resized as soon as it is blurred (no batch of full-size blurred images
    in memory). Chunks of one sample (a CPU at 512²) take their own route: mirror-padded into one
    zero-margined buffer kept across samples, and, when the resize shrinks the rows, the inverse
    transform's last pass (the real one, along the rows) only for the rows the bilinear resize reads
    (about 2/r of them). Splitting irfft2 into its column and row passes, and keeping some rows of
    the latter, gives bitwise the rows irfft2 gives.
    """
    B, C, H, W = x.shape
    k = kernels.shape[-1]
    p = k // 2
    fh, fw = _fft_shape(H, W, k)
    step = _fft_chunk(x, fh, fw)
    out: list[torch.Tensor] = []
    if step > 1 or x.device.type != "cpu":  # (a GPU takes the whole batch in one transform)
        for start in range(0, len(index), step):
            chunk = list(index[start : start + step])
            blurred = filter2d_per_sample(x[chunk], kernels[start : start + step])
            out += [resize_bilinear(im[None], size) for im, size in zip(blurred, sizes[start : start + step])]
        return out
    padded = x.new_zeros(C, fh, fw)  # beyond H + 2p, W + 2p: the zeros the linear convolution needs
    kernel_padded = x.new_zeros(fh, fw)  # beyond k × k: zeros, as rfft2(kernel, s=(fh, fw)) pads
    # Rows the resize does not read are left as they are (never read); zeros at first.
    blurred = torch.zeros_like(x[:1], memory_format=torch.channels_last if _cpu_colour(x) else torch.preserve_format)
    for j, b in enumerate(index):
        _pad_reflect_into(padded, x[b], p)
        spectrum = torch.fft.rfft2(padded)
        kernel_padded[:k, :k] = kernels[j]
        spectrum *= torch.fft.rfft2(kernel_padded)
        rows = bilinear_source_rows(H, sizes[j][0])
        if rows is None:
            blurred[0] = torch.fft.irfft2(spectrum, s=(fh, fw))[:, 2 * p : 2 * p + H, 2 * p : 2 * p + W]
        else:
            part = torch.fft.ifft(spectrum, dim=-2)[:, rows + 2 * p]  # (advanced indexing: 2× index_select's speed)
            blurred[0].index_copy_(1, rows, torch.fft.irfft(part, n=fw, dim=-1)[..., 2 * p : 2 * p + W])
        small = resize_bilinear(blurred, sizes[j])
        out.append(small.clone() if small is blurred else small)  # r = 1 returns the buffer itself
    return out


def blur_resize_matrix(n_in: int, n_out: int, taps: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) matrix of a 1-D blur by ``taps`` (odd length, mirrored borders as
    :func:`pad_reflect`) followed by :func:`resize_bilinear`'s resampling to ``n_out``.

    Bilinear output i reads the source at s = (i + ½)·n_in/n_out − ½ (clamped at 0),
    mixing rows ⌊s⌋ and ⌊s⌋ + 1, so its row is a mix of two rows of the blur matrix.
    """
    dtype, device = taps.dtype, taps.device
    p = taps.numel() // 2
    src = ((torch.arange(n_out, dtype=dtype, device=device) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = (src - i0).unsqueeze(1)

    def blur_rows(centres: torch.Tensor) -> torch.Tensor:
        cols = centres[:, None] + torch.arange(-p, p + 1, device=device)[None, :]
        if p < n_in:  # mirror without repeating the edge (BORDER_REFLECT_101)
            cols = torch.where(cols < 0, -cols, cols)
            cols = torch.where(cols >= n_in, 2 * (n_in - 1) - cols, cols)
        else:  # too small to mirror: replicate, as pad_reflect falls back to
            cols = cols.clamp(0, n_in - 1)
        rows = torch.arange(centres.numel(), device=device)[:, None].expand_as(cols)
        m = torch.zeros(centres.numel(), n_in, dtype=dtype, device=device)
        return m.index_put_((rows, cols), taps.expand_as(cols), accumulate=True)

    return (1 - w1) * blur_rows(i0) + w1 * blur_rows(i1)


def blur_resize_isotropic(x: torch.Tensor, sigma: float, kernel_size: int, size: tuple[int, int]) -> torch.Tensor:
    """Isotropic Gaussian blur then bilinear resize to ``size``, as two small matrix products.

    Equals ``resize_bilinear(filter2d_per_sample(x, iso kernel), size)`` (the kernel is
    separable), for a fraction of the cost: at r = 4 one 512² image needs ~0.1 GFLOP
    here against several for the FFT route. ``x``: (1, C, H, W) → (1, C, *size).
    """
    H, W = x.shape[-2:]
    # Built on the CPU in float64: small, and free of the CUDA scatter-add's run-to-run jitter.
    offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = taps / taps.sum()
    rows = blur_resize_matrix(H, size[0], taps).to(x.device, x.dtype)  # (h, H)
    # (w, W): a square image shrunk to a square is the same matrix (half the set-up cost)
    cols = rows if (W, size[1]) == (H, size[0]) else blur_resize_matrix(W, size[1], taps).to(x.device, x.dtype)
    if x.device.type != "cpu":  # a GPU multiplies the dense matrices faster than it finds the bands
        return rows @ x @ cols.T
    # Each row of these matrices is zero outside a band (~r·taps wide): multiplying block by block
    # over the band alone skips 3-4× the work at r ≈ 1.5-2 (the same sums in a different order).
    t = _banded_matmul(rows, x)  # (1, C, h, W)
    return _banded_matmul(cols, t.mT).mT.contiguous()


def _banded_matmul(m: torch.Tensor, x: torch.Tensor, block: int = 64) -> torch.Tensor:
    """``m @ x`` for a (h, n) matrix ``m`` whose rows are nonzero on a band only; ``x``: (..., n, W)."""
    h, n = m.shape
    nonzero = m != 0
    first = nonzero.to(torch.uint8).argmax(1)  # every row has a nonzero (its weights sum to 1)
    last = n - 1 - nonzero.flip(1).to(torch.uint8).argmax(1)
    out = x.new_empty(*x.shape[:-2], h, x.shape[-1])
    for i in range(0, h, block):
        lo, hi = int(first[i : i + block].min()), int(last[i : i + block].max()) + 1
        out[..., i : i + block, :] = m[i : i + block, lo:hi] @ x[..., lo:hi, :]
    return out


def filter2d_separable(x: torch.Tensor, kernel_1d: torch.Tensor) -> torch.Tensor:
    """Same-size filtering by ``kernel_1d`` (odd length) along rows then columns, mirror-padded."""
    C = x.shape[1]
    k = kernel_1d.numel()
    w = kernel_1d.to(dtype=x.dtype, device=x.device)
    x = F.conv2d(pad_reflect(x, 0, k // 2), w.view(1, 1, 1, k).expand(C, 1, 1, k), groups=C)
    return F.conv2d(pad_reflect(x, k // 2, 0), w.view(1, 1, k, 1).expand(C, 1, k, 1), groups=C)


# --------------------------------------------------------------------------- resampling


def _cpu_colour(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.shape[1] > 1


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], *, channels_last: bool = False) -> torch.Tensor:
    """cv2.INTER_LINEAR's resampling (half-pixel centres, no antialiasing, as GFPGAN's pipeline uses).

    ``channels_last``: a CPU colour result may stay in channels-last layout (the same values; for a
    caller that copies it on anyway, which then converts the layout in its copy)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if _cpu_colour(x):
        # torch's CPU kernel vectorizes over the channels only in channels-last layout: the same
        # numbers, 3-4× faster for a 512² colour image, conversions included.
        x = x.contiguous(memory_format=torch.channels_last)
        out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
        return out if channels_last else out.contiguous()
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
