"""A learned one-step image denoiser: the inverse ``J`` of Noise-I2SB for the MNIST toy.

Noise-I2SB hashes the clean image as ``x̂ = x + λ(y) ε`` (P-I2SB eq. 11) and
decodes with ``Denoise(x̂; λ(y))`` (eq. 18), which the paper runs as DDIM "at
the initial number of steps" of a pretrained diffusion model. The toy has no
such model, and training one per run would cost more than all the bridges. The
honest cheap substitute used here is a direct MMSE denoiser: a small CNN
``D(x̃, σ)`` trained on clean training images with ``x̃ = x + σ ε``, σ drawn
from the levels the strategy uses, to minimise ``E‖D(x̃, σ) − x‖² / σ²``. Its
minimiser is the posterior mean ``E[x | x̃]`` (Tweedie), the same target a
one-step DDIM jump from level σ estimates; it is *not* the paper's DDIM decoder,
and results with it should be read that way.

``ImageDenoiser`` satisfies :class:`pi2sb_lab.hashing.Denoiser`:
``denoiser(x_noisy, sigma (N,)) -> x``. It predicts the noise, so
``D(x̃, σ) = x̃ − σ · ε̂(x̃, σ)`` and ``σ = 0`` returns its input exactly.
"""

from __future__ import annotations

import torch
from torch import nn


from . import seeded

__all__ = ["ImageDenoiser", "train_denoiser"]


class ImageDenoiser(nn.Module):
    """``D(x̃, σ) = x̃ − σ ε̂(x̃, σ)``, ``ε̂`` a 4-layer 3×3 CNN that also sees σ as a constant channel.

    ``x_noisy``: ``(N, C, H, W)``; ``sigma``: ``(N,)`` or a scalar, the noise std of each image.
    """

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.eps = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )  # fmt: skip

    def _sigma(self, sigma, x: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},); got {tuple(sigma.shape)}")
        if bool((sigma < 0).any()):
            raise ValueError("sigma must be >= 0")
        return sigma

    def predict_noise(self, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        """``ε̂(x̃, σ)``, shaped like ``x_noisy``."""
        if x_noisy.ndim != 4 or x_noisy.shape[1] != self.channels:
            raise ValueError(f"x_noisy must be (N, {self.channels}, H, W); got {tuple(x_noisy.shape)}")
        sigma = self._sigma(sigma, x_noisy)
        level = sigma.reshape(-1, 1, 1, 1).expand(-1, 1, *x_noisy.shape[2:])
        return self.eps(torch.cat([x_noisy, level], dim=1))

    def forward(self, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        sigma = self._sigma(sigma, x_noisy)
        return x_noisy - sigma.reshape(-1, 1, 1, 1) * self.predict_noise(x_noisy, sigma)


def train_denoiser(
    images: torch.Tensor,
    *,
    sigma_range: tuple[float, float] = (0.0, 0.1),
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ImageDenoiser:
    """Fit an :class:`ImageDenoiser` on clean ``images`` ``(N, C, H, W)`` at levels σ ~ U[``sigma_range``].

    Loss ``‖ε̂(x + σε, σ) − ε‖²`` (equal to ``‖D − x‖²/σ²``, well scaled at every
    level), through ``train.training_loop``. Pass the level range the Noise strategy
    produces (a constant λ can be given as ``(λ, λ)``). The initialisation and every
    draw depend only on ``seed``.
    """
    lo, hi = sigma_range
    if not 0 <= lo <= hi or hi == 0:
        raise ValueError(f"sigma_range must be (lo, hi) with 0 <= lo <= hi and hi > 0; got {sigma_range}")
    if images.ndim != 4 or steps < 1 or batch_size < 1 or images.shape[0] < batch_size:
        raise ValueError(f"images must be (N, C, H, W) with N >= batch_size >= 1, and steps >= 1; got "
                         f"{tuple(images.shape)}, batch_size {batch_size}, steps {steps}")
    from ..train import fit_supervised

    device = torch.device(device)
    images = images.to(device)
    model = seeded(lambda: ImageDenoiser(images.shape[1]), seed, device)

    def pair_fn(rows: torch.Tensor, generator: torch.Generator):
        x = images[rows]
        sigma = lo + (hi - lo) * torch.rand(x.shape[0], generator=generator, device=generator.device).to(device)
        eps = torch.randn(x.shape, generator=generator, device=generator.device).to(device)
        return x + sigma.reshape(-1, 1, 1, 1) * eps, sigma, eps

    def loss_fn(m: ImageDenoiser, x_noisy, sigma, eps):
        return (m.predict_noise(x_noisy, sigma) - eps).square().mean()

    return fit_supervised(model, images.shape[0], pair_fn, loss_fn, steps=steps, batch_size=batch_size, lr=lr,
                          seed=seed, device=device, name="Noise-I2SB denoiser",
                          progress=progress).requires_grad_(False)
