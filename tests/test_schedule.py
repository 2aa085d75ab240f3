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
    q0 = np.array([quad(ref_beta, 0.0, ti, points=[0.5] if 0 < 0.5 < ti else None, epsabs=1e-14, epsrel=1e-14)[0]
                   for ti in T])
    q1 = np.array([quad(ref_beta, ti, 1.0, points=[0.5] if ti < 0.5 < 1 else None, epsabs=1e-14, epsrel=1e-14)[0]
                   for ti in T])
    errors = np.concatenate([np.abs(s2 - q0), np.abs(sb2 - q1)])
    assert np.isfinite(errors).all(), "σ² or σ̄² is NaN/inf somewhere"  # max() would skip a NaN
    exact(errors.max(), 1e-10, "quadrature")
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
    """The NVlabs/I2SB #11 bug: the schedule a sampler walks is the one continuous β(t) whatever the NFE
    and grid. At every grid's times, β and σ² equal the grid-free reference (β written out
    independently, σ² by quadrature of it): a schedule that changed with the number of steps could not."""
    sched = SymmetricSchedule()
    for kind in ("uniform", "quadratic"):
        for nfe in (4, 10, 50):
            t = time_grid(nfe, kind).t
            beta_ref = np.array([beta_reference(ti, 0.1, 0.3) for ti in t.tolist()])
            s2_ref = np.array([quad(beta_reference, 0.0, ti, args=(0.1, 0.3), points=[0.5] if ti > 0.5 else None,
                                    epsabs=1e-14, epsrel=1e-14)[0] for ti in t.tolist()])
            errors = np.concatenate([np.abs(sched.beta(t).numpy() - beta_ref), np.abs(sched.sigma2(t).numpy() - s2_ref)])
            assert np.isfinite(errors).all() and errors.max() < 1e-12, (kind, nfe, errors.max())


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
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 1000000\].*; got 0"):
        time_grid(0)
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]"):
        time_grid(10, "cosine")
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("linear")
    with pytest.raises(ValueError, match="beta must be a finite number > 0; got 0.0"):
        ConstantSchedule(0.0)


@pytest.mark.parametrize("make, match", [
    (lambda: SymmetricSchedule(0.1, float("inf")), "beta_max must be a finite number > 0; got inf"),
    (lambda: SymmetricSchedule(float("nan"), 0.3), "beta_min must be a finite number > 0; got nan"),
    (lambda: SymmetricSchedule("0.1", 0.3), r"beta_min must be a real number > 0; got '0.1' \(str\)"),
    (lambda: ConstantSchedule(float("inf")), "beta must be a finite number > 0; got inf"),
    (lambda: SymmetricSchedule().scaled(float("inf")), "scale c must be a finite number > 0; got inf"),
    (lambda: SymmetricSchedule().scaled(float("nan")), "scale c must be a finite number > 0; got nan"),
    (lambda: ConstantSchedule(1e300).scaled(1e10), "outside the positive finite floats"),
    (lambda: time_grid(10**12), r"nfe must be an integer in \[1, 1000000\].*; got 1000000000000"),
    (lambda: time_grid(4.0), r"nfe must be an integer .*; got 4.0 \(float\)"),
    (lambda: time_grid(True), r"nfe must be an integer .*; got True \(bool\)"),
    (lambda: SymmetricSchedule().sigma2(float("nan")), r"t must lie in \[0, 1\].*NaN"),
    (lambda: SymmetricSchedule().sigma2("half"), "t must be a number or a tensor of times"),
    (lambda: make_schedule(None), "schedule must be one of"),
], ids=lambda v: "" if callable(v) else v[:24])
def test_bad_values_name_the_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_numpy_integers_are_integers():
    assert time_grid(np.int64(4)) == time_grid(4)
    assert SymmetricSchedule(np.float64(0.1), 0.3) == SymmetricSchedule(0.1, 0.3)
