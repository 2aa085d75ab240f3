"""NIQE, the no-reference "naturalness" score of P-I2SB Tables 1–3 (Mittal, Soundararajan & Bovik 2013).

An image's score is the distance between two multivariate Gaussians of 36 "natural
scene statistics" features: one fitted once to patches of pristine photographs
(the *model*), one fitted to the patches of the image being scored::

    NIQE = sqrt((μ_p − μ_d)ᵀ ((Σ_p + Σ_d)/2)⁺ (μ_p − μ_d))          (lower = more natural)

Features, per patch (96² at full resolution, 48² at half): MSCN coefficients
``(I − μ)/(σ + 1)`` with a 7×7 Gaussian window (σ = 7/6, replicated borders), a
generalized Gaussian fitted to them (shape α, variance), and an asymmetric GGD fitted
to the products of neighbouring coefficients in four directions (shape, mean, left
and right variances): 2 + 4·4 = 18 per scale, two scales (the second after a ×½
antialiased bicubic resize). Images are scored on their luma: the Y of ITU-R BT.601
YCbCr on the 0–255 scale, as the face-restoration literature computes it (BasicSR).

The model is a file: MATLAB's ``modelparameters.mat`` (``mu_prisparam``,
``cov_prisparam``; the same file pyiqa calls ``niqe_modelparameters.mat``) or an
``.npz`` written by :func:`save_model`. Nothing is downloaded: a missing file raises
``MissingWeightsError`` naming it and the folder to put it in. :func:`fit_model`
builds a model from your own pristine images (the patches sharper than 0.75 × the
sharpest, as the paper does); the tests use one fitted to a few bundled photographs.
This is an implementation from the paper's description; it is not bit-identical to
MATLAB's (its imresize and this antialiased bicubic differ slightly at the ×½ scale).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import MissingWeightsError

__all__ = ["NIQEModel", "MODEL_FILE", "default_model_path", "load_model", "save_model", "fit_model", "features",
           "niqe", "ggd_fit", "aggd_fit"]

MODEL_FILE = "niqe_modelparameters.mat"
_ALPHAS = torch.arange(0.2, 10.0005, 0.001, dtype=torch.float64)  # the shape grid of the moment matching


@dataclass(frozen=True)
class NIQEModel:
    """The pristine Gaussian: ``mu`` (36,), ``cov`` (36, 36) float64, and the patch side it was fitted with."""

    mu: np.ndarray
    cov: np.ndarray
    patch_size: int = 96


def default_model_path() -> Path:
    """``<torch hub dir>/checkpoints/niqe_modelparameters.mat`` (beside LPIPS's and FID's weights)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / MODEL_FILE


def load_model(path: str | os.PathLike | None = None) -> NIQEModel:
    """Read a NIQE model (.mat as MATLAB's, or .npz from :func:`save_model`); None: :func:`default_model_path`."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"NIQE needs its pristine-model file {path.name!r} in {path.parent!s}: MATLAB's niqe "
            f"'modelparameters.mat' (keys mu_prisparam, cov_prisparam), saved as {path.name}, or an .npz from "
            "pi2sb_lab.niqe.save_model(fit_model(pristine images)). It is not downloaded automatically.")
    if path.suffix == ".npz":
        with np.load(path) as z:
            return NIQEModel(z["mu"].astype(np.float64), z["cov"].astype(np.float64), int(z["patch_size"]))
    from scipy.io import loadmat

    mat = loadmat(path)
    return NIQEModel(np.asarray(mat["mu_prisparam"], np.float64).reshape(-1),
                     np.asarray(mat["cov_prisparam"], np.float64), 96)


def save_model(model: NIQEModel, path: str | os.PathLike) -> Path:
    path = Path(path)
    np.savez(path, mu=model.mu, cov=model.cov, patch_size=model.patch_size)
    return path


# --------------------------------------------------------------------------- distribution fits


def ggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Gaussian fit per row of ``x`` (P, N) by moment matching: (shape α, variance), each (P,).

    ``ρ = E[x²]/E[|x|]²`` equals Γ(1/α)Γ(3/α)/Γ(2/α)² for a GGD of shape α; α is the grid point closest.
    """
    var = x.square().mean(dim=1)
    rho = var / x.abs().mean(dim=1).square()
    a = _ALPHAS.to(x.device)
    r_grid = torch.exp(torch.lgamma(1 / a) + torch.lgamma(3 / a) - 2 * torch.lgamma(2 / a))
    alpha = a[(rho[:, None] - r_grid[None, :]).abs().argmin(dim=1)]
    return alpha, var


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Asymmetric GGD fit per row of ``x`` (P, N): (shape α, mean, left variance, right variance), each (P,)."""
    neg, pos = x < 0, x > 0
    left = ((x.square() * neg).sum(dim=1) / neg.sum(dim=1).clamp(min=1)).sqrt()
    right = ((x.square() * pos).sum(dim=1) / pos.sum(dim=1).clamp(min=1)).sqrt()
    gamma_hat = left / right
    r_hat = x.abs().mean(dim=1).square() / x.square().mean(dim=1)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat.square() + 1).square()
    a = _ALPHAS.to(x.device)
    r_grid = torch.exp(2 * torch.lgamma(2 / a) - torch.lgamma(1 / a) - torch.lgamma(3 / a))
    alpha = a[(r_grid[None, :] - r_norm[:, None]).square().argmin(dim=1)]
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    mean = (right - left) * scale * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    return alpha, mean, left.square(), right.square()


# --------------------------------------------------------------------------- features


def _luma(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 RGB or (1, H, W) → (H, W) float64 on 0–255: BT.601 Y (16–235) for colour."""
    x = image.double()
    if x.shape[0] == 1:
        return x[0]
    r, g, b = x[0] / 255, x[1] / 255, x[2] / 255
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b)  # the Y of YCbCr, as BasicSR's to_y_channel


def _mscn(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients and the local σ of a (H, W) float64 image (7×7 Gaussian, σ = 7/6, replicated borders)."""
    offsets = torch.arange(7, dtype=torch.float64, device=img.device) - 3
    g = torch.exp(-offsets.square() / (2 * (7 / 6) ** 2))
    window = (g[:, None] * g[None, :]) / (g.sum() ** 2)
    padded = F.pad(img[None, None], (3, 3, 3, 3), mode="replicate")
    mu = F.conv2d(padded, window[None, None])[0, 0]
    mu_sq = F.conv2d(F.pad(img.square()[None, None], (3, 3, 3, 3), mode="replicate"), window[None, None])[0, 0]
    sigma = (mu_sq - mu.square()).abs().sqrt()
    return (img - mu) / (sigma + 1), sigma


def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """(H, W) → (number of whole p×p patches, p²), row-major like MATLAB's blkproc."""
    h, w = (x.shape[0] // p) * p, (x.shape[1] // p) * p
    return x[:h, :w].reshape(h // p, p, w // p, p).permute(0, 2, 1, 3).reshape(-1, p * p)


def _scale_features(img: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(patches, 18) features of one scale, and each patch's sharpness (the mean local σ)."""
    mscn, sigma = _mscn(img)
    alpha, var = ggd_fit(_patches(mscn, p))
    feats = [alpha, var]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # horizontal, vertical, both diagonals (circular, as circshift)
        pair = mscn * torch.roll(mscn, shifts=shift, dims=(0, 1))
        feats.extend(aggd_fit(_patches(pair, p)))
    return torch.stack(feats, dim=1), _patches(sigma, p).mean(dim=1)


def features(image: torch.Tensor, patch_size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """The (patches, 36) NIQE features of one (C, H, W) uint8 image, and each patch's sharpness."""
    y = _luma(image)
    h, w = (y.shape[0] // patch_size) * patch_size, (y.shape[1] // patch_size) * patch_size
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs images of at least {patch_size}×{patch_size} (its patch); got {tuple(y.shape)}")
    y = y[:h, :w]
    f1, sharp = _scale_features(y, patch_size)
    half = F.interpolate(y[None, None], scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)[0, 0]
    f2, _ = _scale_features(half, patch_size // 2)
    return torch.cat([f1, f2], dim=1), sharp


def _gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of rows, ignoring rows with NaN (MATLAB's nanmean/nancov); a single row: cov 0."""
    feats = feats[~np.isnan(feats).any(axis=1)]
    mu = feats.mean(axis=0)
    cov = np.cov(feats, rowvar=False) if feats.shape[0] > 1 else np.zeros((feats.shape[1],) * 2)
    return mu, np.atleast_2d(cov)


def niqe(image: torch.Tensor, model: NIQEModel) -> float:
    """NIQE of one (C, H, W) uint8 image (C = 1 or 3) against ``model``; lower is more natural."""
    feats, _ = features(image, model.patch_size)
    mu, cov = _gaussian(feats.numpy())
    diff = model.mu - mu
    return float(math.sqrt(max(0.0, diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff)))


def fit_model(images, patch_size: int = 96, sharpness: float = 0.75) -> NIQEModel:
    """A pristine model from an iterable of (C, H, W) uint8 images: the Gaussian of the features of every
    patch whose sharpness exceeds ``sharpness`` × that image's sharpest (the paper's selection)."""
    kept = []
    for image in images:
        feats, sharp = features(image, patch_size)
        kept.append(feats[sharp > sharpness * sharp.max()].numpy())
    mu, cov = _gaussian(np.concatenate(kept))
    return NIQEModel(mu, cov, patch_size)
