"""The learned one-step denoiser that decodes Noise-I2SB on images."""

from __future__ import annotations

import pytest
import torch

from pi2sb_lab.data.mnist import load_mnist
from pi2sb_lab.nets.denoiser import ImageDenoiser, train_denoiser
from pi2sb_lab.hashing import Denoiser, Noise
from pi2sb_lab.metrics import psnr


def test_zero_level_is_the_identity_and_shapes_are_checked(gen):
    d = ImageDenoiser()
    x = torch.rand(4, 1, 32, 32, generator=gen) * 2 - 1
    assert isinstance(d, Denoiser)
    assert torch.equal(d(x, torch.zeros(4)), x)
    assert d(x, 0.1).shape == x.shape
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(4,\)"):
        d(x, torch.zeros(3))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        d(x, -0.1)
    with pytest.raises(ValueError, match=r"x_noisy must be \(N, 1, H, W\)"):
        d(torch.zeros(2, 3, 32, 32), 0.1)
    with pytest.raises(ValueError, match=r"sigma_range must be \(lo, hi\)"):
        train_denoiser(x, sigma_range=(0.2, 0.1))


def test_trained_denoiser_removes_noise_and_decodes_noise_i2sb():
    """A learned bound: 100 steps at λ = 0.1 gain several dB over the noisy digits (4.8 dB when written)."""
    images = load_mnist("train").images
    lam = 0.1
    d = train_denoiser(images[:1000], sigma_range=(lam, lam), steps=100, batch_size=32, seed=0, progress=False)
    clean = load_mnist("test").images[:200]
    strategy = Noise(level=lam, denoiser=d)
    x_hat, y_hat = strategy.encode(clean, clean, generator=torch.Generator().manual_seed(0))
    noisy_db = psnr(x_hat, clean).mean().item()
    decoded = strategy.decode(x_hat, clean)
    gain = psnr(decoded, clean).mean().item() - noisy_db
    assert gain > 3.0, f"denoising gained only {gain:.2f} dB over {noisy_db:.2f} dB"
    assert not any(p.requires_grad for p in d.parameters())
