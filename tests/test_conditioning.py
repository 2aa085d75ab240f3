"""Table 3's condition builders and the degradation estimator."""

from __future__ import annotations

import pytest
import torch

from pi2sb_lab.conditioning import CONDITIONINGS, Conditioning, get_conditioning
from pi2sb_lab.nets.estimator import DegradationEstimator, estimator_error, train_degradation_estimator
from pi2sb_lab.data.mnist import load_mnist
from pi2sb_lab.degrade import DEGRADATION_PARAM_DIM, DEGRADATION_PARAM_NAMES, degrade
from pi2sb_lab.nets.unet import UNet


def test_builders_give_the_unet_convention(gen):
    y = torch.rand(3, 1, 32, 32, generator=gen) * 2 - 1
    vec = torch.rand(3, DEGRADATION_PARAM_DIM, generator=gen)
    assert get_conditioning("none").build(y, vec) is None
    assert get_conditioning("lq").build(y) is y
    cond = get_conditioning("lq+da").build(y, vec)
    assert set(cond) == {"image", "degradation"} and cond["image"] is y and torch.equal(cond["degradation"], vec)
    assert Conditioning(da=True).build(y, vec).keys() == {"degradation"}
    assert [c.name for c in CONDITIONINGS.values()] == ["none", "lq", "lq+da"]
    # Every builder's output is exactly what a U-Net built with its kwargs accepts.
    for conditioning in CONDITIONINGS.values():
        net = UNet.from_config("mnist-fast", **conditioning.unet_kwargs(1))
        assert net(y, torch.rand(3, generator=gen), conditioning.build(y, vec)).shape == y.shape


def test_bad_conditions_name_what_is_accepted():
    y = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"valid names: \['none', 'lq', 'lq\+da'\]"):
        get_conditioning("lq+noise")
    with pytest.raises(ValueError, match=r"needs degradation of shape \(2, 9\).*got None"):
        get_conditioning("lq+da").build(y)
    with pytest.raises(ValueError, match=r"needs degradation of shape \(2, 9\).*got \(2, 4\)"):
        get_conditioning("lq+da").build(y, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"y must be \(B, 1, H, W\)"):
        DegradationEstimator()(torch.zeros(2, 3, 32, 32))


def test_estimator_error_against_direct_formulas(gen, exact):
    true = torch.rand(50, DEGRADATION_PARAM_DIM, generator=gen, dtype=torch.float64)
    true[:, -1] = 0.0  # a constant column (gray never drawn) is left out of the mean
    predicted = true + 0.1 * torch.randn(true.shape, generator=gen, dtype=torch.float64)
    mean = torch.full((DEGRADATION_PARAM_DIM,), 0.5, dtype=torch.float64)
    err = estimator_error(predicted, true, mean)
    per = (predicted - true).abs().mean(0)
    assert err.varying == DEGRADATION_PARAM_NAMES[:-1]
    exact(abs(err.mae - per[:-1].mean().item()), what="mae")
    exact(abs(err.baseline_mae - (0.5 - true[:, :-1]).abs().mean().item()), what="baseline")
    exact([abs(err.per_param[n] - per[i].item()) for i, n in enumerate(DEGRADATION_PARAM_NAMES)], what="per")
    assert estimator_error(true, true, mean).mae == 0.0
    with pytest.raises(ValueError, match=r"both be \(N, 9\)"):
        estimator_error(predicted[:, :3], true[:, :3], mean)


def test_trained_estimator_beats_the_constant_guess():
    """A learned bound: 150 steps on 1,000 degraded digits already beat always answering the training mean."""
    images = load_mnist("train").images
    train = degrade(images[:1000], "mnist32", generator=torch.Generator().manual_seed(0))
    test = degrade(images[1000:1300], "mnist32", generator=torch.Generator().manual_seed(1))
    params = train.params.as_vector()
    est = train_degradation_estimator(train.y, params, steps=150, batch_size=32, seed=0, progress=False)
    predicted = est.predict(test.y)
    assert predicted.shape == (300, DEGRADATION_PARAM_DIM) and 0 <= predicted.min() and predicted.max() <= 1
    err = estimator_error(predicted, test.params.as_vector(), params.mean(0))
    assert "gray" not in err.varying  # the mnist32 preset never grays
    assert err.mae < err.baseline_mae - 0.01, \
        f"estimator MAE {err.mae:.3f} vs constant guess {err.baseline_mae:.3f}; per parameter {err.per_param}"
