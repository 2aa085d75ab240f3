"""NIQE (pi2sb_lab.niqe): the distribution fits against known shapes, and the score's direction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pi2sb_lab.metrics import MissingWeightsError
from pi2sb_lab.niqe import aggd_fit, fit_model, ggd_fit, load_model, niqe, save_model
from photos import crops


def test_ggd_and_aggd_fits_recover_the_shape_of_known_laws(gen):
    gauss = torch.randn(3, 200_000, generator=gen, dtype=torch.float64)
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((3, 200_000)).double()
    alpha_g, var_g = ggd_fit(gauss)
    alpha_l, _ = ggd_fit(laplace)
    assert torch.allclose(alpha_g, torch.full_like(alpha_g, 2.0), atol=0.05), alpha_g   # Gaussian: shape 2
    assert torch.allclose(alpha_l, torch.full_like(alpha_l, 1.0), atol=0.05), alpha_l   # Laplace: shape 1
    assert torch.allclose(var_g, torch.ones_like(var_g), atol=0.02), var_g
    # An AGGD of shape 2 with left std 1 and right std 2: half-Gaussians, each side taken with probability
    # proportional to its scale (1/3 left, 2/3 right), so the density is continuous at 0.
    half = gauss.abs()
    x = torch.where(torch.rand(gauss.shape, generator=gen, dtype=torch.float64) < 1 / 3, -half, 2 * half)
    alpha, mean, left, right = aggd_fit(x)
    assert torch.allclose(alpha, torch.full_like(alpha, 2.0), atol=0.1), alpha
    assert torch.allclose(left, torch.ones_like(left), atol=0.03) and torch.allclose(right, 4 * torch.ones_like(right), atol=0.1)
    # the AGGD mean is (β_r − β_l)·Γ(2/α)/Γ(1/α); at α = 2, β = σ√2, so (2 − 1)·√2/√π
    assert torch.allclose(mean, torch.full_like(mean, (2 / np.pi) ** 0.5), atol=0.03), mean


def test_degraded_photos_score_worse_than_the_pristine_ones(tmp_path, gen):
    photos = [torch.from_numpy(c).permute(2, 0, 1) for c in crops(8, 64)]
    model = fit_model(photos, patch_size=16)
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and np.isfinite(model.cov).all()
    for image in photos[:3]:
        blurred = F.avg_pool2d(image[None].float(), 4).repeat_interleave(4, 2).repeat_interleave(4, 3)[0]
        noisy = image.float() + 25 * torch.randn(image.shape, generator=gen)
        scores = [niqe(im.clamp(0, 255).round().to(torch.uint8), model) for im in (image.float(), blurred, noisy)]
        assert all(np.isfinite(scores)), scores
        assert scores[0] < scores[1] and scores[0] < scores[2], f"pristine, blurred, noisy: {scores}"
    save_model(model, tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert again.patch_size == 16 and np.array_equal(again.mu, model.mu)


def test_missing_model_names_the_file_and_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"niqe_modelparameters.mat.*not downloaded"):
        load_model(tmp_path / "niqe_modelparameters.mat")
    with pytest.raises(ValueError, match="at least 96"):
        niqe(torch.zeros(3, 64, 64, dtype=torch.uint8), load_model_like(96))


def load_model_like(patch):
    from pi2sb_lab.niqe import NIQEModel

    return NIQEModel(np.zeros(36), np.eye(36), patch)
