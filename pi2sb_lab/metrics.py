"""Image-restoration metrics: PSNR, SSIM, LPIPS, Fréchet distance, digit accuracy.

All image arguments follow the project convention (docs/design.md): float tensors in
``[-1, 1]``, NCHW. Per-image metrics return a ``(B,)`` tensor; reduce it as the
table needs.

* :func:`psnr` is computed on the ``[-1, 1]`` images with data range 2 — the
  same number as on ``[0, 1]`` with range 1 or uint8 with range 255.
* :func:`ssim` takes ``[-1, 1]`` images and scores them mapped to ``[0, 1]``
  (range 1): SSIM is not shift-invariant, and this is the standard value, the
  one computed on the uint8 images.
* :func:`frechet_distance` is the Fréchet distance between Gaussian fits of two
  feature sets. With ``nets.classifier.DigitClassifier`` features (our small MNIST CNN) it
  is the "Fréchet distance on our digit-classifier features": the MNIST stand-in
  for the Inception-based metric of the papers, with other numbers than it.
* :class:`LPIPSMetric` wraps the ``lpips`` package and refuses, with
  :class:`MissingWeightsError`, to run when the torchvision backbone file is not
  in the torch hub cache, instead of downloading it.
* :func:`classifier_accuracy`: the label-preservation check of P-I2SB §4.3
  (restored digits should keep their class), with ``nets.classifier.DigitClassifier``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_real

__all__ = [
    "LPIPSMetric",
    "MissingWeightsError",
    "classifier_accuracy",
    "classifier_frechet_distance",
    "frechet_distance",
    "lpips_backbone_file",
    "psnr",
    "ssim",
]

DATA_RANGE = 2.0  # images live in [-1, 1]


def _check_pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    a, b = names
    for name, v in ((a, x), (b, y)):
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.ndim != 4:
            raise ValueError(f"{name} must be a batch of images (B, C, H, W), got shape {tuple(v.shape)}")
        if not v.is_floating_point():  # uint8 differences wrap around: a silently wrong PSNR
            raise ValueError(f"{name} must be a float image in [-1, 1]; got {v.dtype} (uint8 x maps to x / 127.5 - 1)")
    if x.shape != y.shape:
        raise ValueError(f"{a} and {b} must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


# --------------------------------------------------------------------------- PSNR / SSIM


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, ``10 log10(data_range² / MSE)`` in dB.

    x, y: ``(B, C, H, W)``; the MSE averages over C, H, W. Returns ``(B,)`` in the
    dtype of ``x`` (float64 in, float64 out). Identical images give ``+inf``.
    """
    _check_pair(x, y)
    data_range = check_real("data_range", data_range, low=0, low_open=True)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def _check_in_range(x: torch.Tensor, y: torch.Tensor, low: float, high: float) -> None:
    """SSIM's constants assume ``value_range``: float images in [0, 255] scored as [-1, 1] give a plausible,
    wrong number. Values may overshoot a little (an unclamped sampler's output), not by half the range."""
    slack = (high - low) / 2
    for name, image in (("x", x), ("y", y)):
        if image.is_floating_point() and image.numel():
            lo, hi = image.aminmax()
            lo, hi = float(lo), float(hi)
            if not (lo >= low - slack and hi <= high + slack):  # NaN fails too
                raise ValueError(f"{name} has values in [{lo:g}, {hi:g}], far outside value_range=({low:g}, {high:g}); "
                                 "pass value_range=(0, 255) for [0, 255] images, or scale them")


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), ``(B,)``.

    The standard setting: an ``11×11`` Gaussian window with σ = 1.5, K1 = 0.01,
    K2 = 0.03, local statistics over the *valid* window positions (no padding),
    the SSIM map averaged over positions and then over channels (colour images
    are scored per channel, not on luminance). Needs H, W >= window_size.

    Unlike PSNR, SSIM is not shift-invariant (its luminance term uses μ_x μ_y),
    so "SSIM on [-1, 1] with range 2" is a different, non-standard number. We
    take ``[-1, 1]`` images (``value_range``) and score them mapped to ``[0, 1]``
    with data range 1 (C1 = 0.01², C2 = 0.03²) — the same value as the usual
    SSIM on the uint8 images with range 255.
    """
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    _check_pair(x, y)
    _check_in_range(x, y, low, high)
    b, c, h, w = x.shape
    if h < window_size or w < window_size:
        raise ValueError(f"ssim needs images of at least {window_size}x{window_size}, got {h}x{w}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    x, y = (x.to(dtype) - low) / (high - low), (y.to(dtype) - low) / (high - low)
    window = _gaussian_window(window_size, sigma, dtype, x.device).expand(c, 1, window_size, window_size)

    def local_mean(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, window, groups=c)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = k1**2, k2**2  # data range 1 after the mapping to [0, 1]
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(2).mean(dim=2).mean(dim=1)


# --------------------------------------------------------------------------- Fréchet distance


def _as_float64_2d(feats: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(feats, torch.Tensor):
        feats = feats.detach().cpu().numpy()
    arr = np.asarray(feats, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples to fit a covariance, got {arr.shape[0]}")
    if not np.isfinite(arr).all():  # else numpy's LinAlgError from deep inside the eigendecomposition
        raise ValueError(f"{name} holds {int((~np.isfinite(arr)).any(axis=1).sum())} of {arr.shape[0]} rows with "
                         "NaN or inf (were the images NaN: a diverged model?)")
    return arr


def _sqrt_psd(mat: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix by eigendecomposition (negative round-off clipped)."""
    eigvals, eigvecs = np.linalg.eigh((mat + mat.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Fréchet (2-Wasserstein²) distance between Gaussian fits of two feature sets.

    ``d² = ‖μ_a − μ_b‖² + tr(Σ_a + Σ_b − 2 (Σ_a^½ Σ_b Σ_a^½)^½)`` with unbiased
    covariances, in float64. The cross term uses the symmetric form
    ``Σ_a^½ Σ_b Σ_a^½`` (PSD, so both roots are eigendecompositions of symmetric
    matrices) instead of the non-symmetric ``(Σ_a Σ_b)^½``; the traces agree.

    feats_a: ``(N_a, D)``; feats_b: ``(N_b, D)``; tensors or arrays.
    """
    a = _as_float64_2d(feats_a, "feats_a")
    b = _as_float64_2d(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    root_a = _sqrt_psd(cov_a)
    cross = root_a @ cov_b @ root_a
    cross_eig = np.linalg.eigvalsh((cross + cross.T) / 2)
    trace_sqrt_cross = np.sqrt(np.clip(cross_eig, 0.0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_cross
    return float(max(value, 0.0))


def classifier_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` that ``classifier`` labels correctly (P-I2SB §4.3 label preservation)."""
    if labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images (N, ...) and labels (N,) disagree: {tuple(images.shape)} vs {tuple(labels.shape)}")
    return float((classifier.predict(images) == labels.cpu()).double().mean())


def classifier_frechet_distance(
    classifier: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    images_a: torch.Tensor,
    images_b: torch.Tensor,
) -> float:
    """Fréchet distance on our digit-classifier features between two image sets.

    ``classifier`` is a ``nets.classifier.DigitClassifier`` (its ``features`` are used) or any callable ``images -> (N, D)`` features (the pluggable extractor).
    """
    extract = classifier.features if hasattr(classifier, "features") else classifier
    return frechet_distance(extract(images_a), extract(images_b))


# --------------------------------------------------------------------------- LPIPS


class MissingWeightsError(RuntimeError):
    """A pretrained-weights file that must be provided by hand is not on disk."""


_LPIPS_BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def lpips_backbone_file(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS trunk weights: ``<torch hub dir>/checkpoints/<file>``.

    The hub dir is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``); the file
    name is the one torchvision's ``IMAGENET1K_V1`` weights enum would download,
    e.g. ``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``.
    """
    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS net {net!r}; valid: {sorted(_LPIPS_BACKBONES)}")
    import torchvision.models

    weights = getattr(torchvision.models, _LPIPS_BACKBONES[net]).IMAGENET1K_V1
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


class LPIPSMetric:
    """LPIPS distance (Zhang et al. 2018) per image pair, from the ``lpips`` package.

    Construction checks that the torchvision backbone file exists (see
    :func:`lpips_backbone_file`) and raises :class:`MissingWeightsError` naming
    the file and the folder otherwise — before ``lpips`` could try to download
    it. The linear calibration layers ship inside the ``lpips`` package.
    Inputs are ``[-1, 1]`` images (what ``lpips`` expects); 1-channel images are
    repeated to 3 channels.
    """

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu") -> None:
        path = lpips_backbone_file(net)
        if not path.is_file():
            raise MissingWeightsError(
                f"LPIPS({net!r}) needs the torchvision ImageNet weights file {path.name!r} in the folder "
                f"{path.parent!s} (torch hub cache: $TORCH_HOME/hub/checkpoints, default "
                f"~/.cache/torch/hub/checkpoints). Copy {path.name} there; it is not downloaded automatically."
            )
        try:
            import lpips
        except ImportError as err:  # pragma: no cover - lpips is an optional extra
            raise ImportError("LPIPS needs the 'lpips' package: pip install 'pi2sb-lab[metrics]'") from err
        self.net = net
        self.device = torch.device(device)
        with warnings.catch_warnings():
            # lpips 0.1.4 calls torchvision's deprecated `pretrained=True`; same weights file, known warning
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
            self.model = lpips.LPIPS(net=net, verbose=False).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B,)`` LPIPS distances between ``x`` and ``y`` (``(B, C, H, W)`` in ``[-1, 1]``, C ∈ {1, 3})."""
        _check_pair(x, y)
        if x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS takes 1- or 3-channel images, got {x.shape[1]} channels")
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        out = self.model(x.to(self.device, torch.float32), y.to(self.device, torch.float32), normalize=False)
        return out.reshape(-1).cpu()
