"""Closed-form schedule integrals against numerical quadrature (float64, ~1e-10)."""

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, make_schedule, time_grid

T = np.linspace(0.0, 1.0, 41)


def beta_reference(t, beta_min, beta_max):
    """I2SB's released schedule written out independently: √β rises linearly from √β_min towards √β_max
    over the whole of [0, 1], but only its first half is kept and mirrored."""
    tau = min(t, 1.0 - t)
    return (np.sqrt(beta_min) + tau * (np.sqrt(beta_max) - np.sqrt(beta_min))) ** 2


def i2sb_discrete_sigma2(n=1000, beta_min=0.1, beta_max=0.3):
    """I2SB's code, re-typed in NumPy: per-step betas as a square-root linspace from β_min/n to β_max/n,
    the first half kept and mirrored; the forward variance after step k is the cumulative sum."""
    betas = np.linspace((beta_min / n) ** 0.5, (beta_max / n) ** 0.5, n, dtype=np.float64) ** 2
    betas = np.concatenate([betas[: n // 2], np.flip(betas[: n // 2])])
    return np.cumsum(betas)  # index k: after k + 1 steps, i.e. at t = (k + 1)/n


def test_symmetric_schedule_is_i2sb_released_schedule():
    """σ²(t) against the cumulative sum of I2SB's 1000 discrete betas, at many t (≤ 0.5 % relative)."""
    n = 1000
    discrete = i2sb_discrete_sigma2(n)
    steps = np.array([1, 10, 50, 100, 250, 400, 500, 600, 750, 900, 999, 1000])
    t = torch.tensor(steps / n, dtype=torch.float64)
    continuous = SymmetricSchedule(0.1, 0.3).sigma2(t).numpy()
    rel = np.abs(continuous - discrete[steps - 1]) / discrete[steps - 1]
    assert np.isfinite(rel).all()
    print(f"largest relative error vs I2SB's discrete schedule: {rel.max():.2e} (at t = {steps[rel.argmax()] / n})")
    assert rel.max() <= 5e-3, f"largest relative error {rel.max():.2e} at t = {steps[rel.argmax()] / n}"
    # The numbers the docs quote: peak ((√β_min + √β_max)/2)² ≈ 0.187 at t = ½, σ²(1) ≈ 0.141.
    sched = SymmetricSchedule()
    assert abs(sched.peak - 0.1866) < 1e-3 and abs(float(sched.beta(0.5)) - sched.peak) < 1e-15
    assert abs(sched.total - 0.1411) < 1e-3 and abs(sched.total - discrete[-1]) / discrete[-1] < 5e-3


@pytest.mark.parametrize("beta_min,beta_max", [(0.1, 0.3), (1e-4, 2.0), (0.5, 0.5), (0.3, 0.1)])
def test_symmetric_schedule_matches_quadrature(beta_min, beta_max, exact):
    sched = SymmetricSchedule(beta_min, beta_max)
    ref_beta = lambda t: beta_reference(t, beta_min, beta_max)  # noqa: E731
    t = torch.tensor(T, dtype=torch.float64)
    assert torch.allclose(sched.beta(t), torch.tensor([ref_beta(x) for x in T], dtype=torch.float64), rtol=0, atol=1e-14)
    s2 = sched.sigma2(t).numpy()
    sb2 = sched.sigma_bar2(t).numpy()
    worst = 0.0
    for i, ti in enumerate(T):
        q0 = quad(ref_beta, 0.0, ti, points=[0.5] if 0 < 0.5 < ti else None, epsabs=1e-14, epsrel=1e-14)[0]
        q1 = quad(ref_beta, ti, 1.0, points=[0.5] if ti < 0.5 < 1 else None, epsabs=1e-14, epsrel=1e-14)[0]
        worst = max(worst, abs(s2[i] - q0), abs(sb2[i] - q1))
    exact(worst, 1e-10, "quadrature")
    # σ² + σ̄² is the constant ∫₀¹ β
    exact(np.abs(s2 + sb2 - sched.total).max(), 1e-12, "sum")


def test_constant_schedule_closed_forms(exact):
    sched = ConstantSchedule(0.7)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(sched.beta(t), torch.full_like(t, 0.7))
    for ti, s2, sb2 in zip(t.tolist(), sched.sigma2(t).tolist(), sched.sigma_bar2(t).tolist()):
        exact(abs(s2 - quad(lambda _: 0.7, 0, ti)[0]), 1e-12)
        exact(abs(sb2 - quad(lambda _: 0.7, ti, 1)[0]), 1e-12)


def test_scaled_multiplies_beta():
    for sched in (SymmetricSchedule(0.1, 0.3), ConstantSchedule(0.2)):
        t = torch.linspace(0, 1, 17, dtype=torch.float64)
        assert torch.allclose(sched.scaled(0.01).beta(t), 0.01 * sched.beta(t), rtol=1e-12, atol=0)


def test_schedule_shape_does_not_depend_on_the_grid():
    """The NVlabs/I2SB #11 bug: β(t) at shared times agrees for every NFE and grid."""
    sched = SymmetricSchedule()
    fine = time_grid(100, "uniform").t
    for nfe in (4, 10, 50):
        coarse = time_grid(nfe, "uniform").t
        idx = (coarse * 100).round().long()
        assert torch.allclose(sched.sigma2(coarse), sched.sigma2(fine[idx]), rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["uniform", "quadratic"])
@pytest.mark.parametrize("nfe", [1, 2, 7, 1000])
def test_time_grid(kind, nfe):
    g = time_grid(nfe, kind)
    assert g.nfe == nfe and g.t.shape == (nfe + 1,)
    assert g.t[0] == 0 and g.t[-1] == 1 and bool((g.t.diff() > 0).all())
    n = torch.arange(nfe + 1, dtype=torch.float64) / nfe
    assert torch.allclose(g.t, n if kind == "uniform" else n**2, atol=1e-15, rtol=0)
    steps = list(g.steps())
    assert len(steps) == nfe and steps[0][0] == 1 and steps[-1][1] == 0
    # consecutive steps chain through the stored grid: the previous time is never recomputed
    assert all(steps[i][1] == steps[i + 1][0] for i in range(nfe - 1))
    drawn = g.sample(500, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isin(drawn, g.t[1:]).all())


def test_bad_input():
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        SymmetricSchedule().sigma2(1.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        SymmetricSchedule().beta(torch.tensor([-0.1, 0.5]))
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        time_grid(0)
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]"):
        time_grid(10, "cosine")
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("linear")
    with pytest.raises(ValueError, match="beta must be > 0"):
        ConstantSchedule(0.0)
