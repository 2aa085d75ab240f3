"""The VP diffusion (diffusion/): closed-form schedule, DDPM/DDIM steps, samplers and inversion with known scores.

Known-score models: for Dirac data x0 the ε-network (x_t − α_t x0)/σ_t is exact; for Gaussian data
N(μ, s²) it is σ_t (x_t − α_t μ)/(α_t² s² + σ_t²), and the probability-flow ODE has the closed-form
flow map x_s = α_s μ + √(v_s/v_t) (x_t − α_t μ), v_t = α_t² s² + σ_t².
"""

import math

import pytest
import torch
from scipy.integrate import quad

from pi2sb_lab.diffusion import VPSchedule, ddim, ddim_invert, ddim_step, ddpm, ddpm_posterior, predict, prior_noise, \
    walk_times
from pi2sb_lab.schedule import time_grid

SCHED = VPSchedule()


def dirac_eps(x0, sched=SCHED):
    """The exact ε-network of Dirac data at x0 (defined for t > 0)."""

    def net(x_t, t, cond=None):
        t = t.double()
        a, s = sched.alpha(t).to(x_t).reshape(-1, *[1] * (x_t.ndim - 1)), sched.sigma(t).to(x_t).reshape(
            -1, *[1] * (x_t.ndim - 1))
        return (x_t - a * x0) / s

    return net


def gaussian_eps(mu, s, sched=SCHED):
    """The exact ε-network of data N(mu, s²) elementwise: E[ε | x_t]."""

    def net(x_t, t, cond=None):
        t = t.double()
        a = sched.alpha(t).to(x_t).reshape(-1, *[1] * (x_t.ndim - 1))
        sig = sched.sigma(t).to(x_t).reshape(-1, *[1] * (x_t.ndim - 1))
        return sig * (x_t - a * mu) / (a * a * s * s + sig * sig)

    return net


def flow_map(x_t, t, s_time, mu, s, sched=SCHED):
    """Exact probability-flow map from time t to s for Gaussian data."""
    v = lambda tt: sched.alpha(tt) ** 2 * s * s + sched.sigma2(tt)  # noqa: E731
    return sched.alpha(s_time) * mu + torch.sqrt(v(s_time) / v(t)) * (x_t - sched.alpha(t) * mu)


# --------------------------------------------------------------------------- schedule


def test_schedule_integral_against_quadrature(exact):
    for sched in (SCHED, VPSchedule(0.5, 7.0), VPSchedule(1.0, 1.0)):
        for t in (0.0, 1e-4, 0.013, 0.3, 0.5, 0.77, 1.0):
            ref, _ = quad(lambda u: float(sched.beta(u)), 0.0, t, epsabs=1e-13, epsrel=1e-13, limit=200)
            exact(abs(-float(sched.log_alpha_bar(t)) - ref), what=f"{sched}")
            exact(abs(float(sched.alpha(t)) ** 2 - math.exp(-ref)), what="alpha")
            exact(abs(float(sched.alpha(t) ** 2 + sched.sigma2(t)) - 1.0), 1e-14, what="alpha2+sigma2")


def test_sigma2_keeps_relative_precision_near_the_clean_end(exact):
    for t in (1e-12, 1e-9, 1e-6):
        lam = SCHED.beta_min * t + 0.5 * (SCHED.beta_max - SCHED.beta_min) * t * t
        series = lam - lam**2 / 2 + lam**3 / 6
        exact(abs(float(SCHED.sigma2(t)) / series - 1), 1e-12)
    t, s = torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    direct = 1 - SCHED.alpha(t) ** 2 / SCHED.alpha(s) ** 2
    exact(abs(float(SCHED._transition_var(t, s) - direct)))


def test_time_at_noise_ratio_inverts_noise_ratio(exact):
    for sched in (SCHED, VPSchedule(1.0, 1.0), VPSchedule(0.2, 5.0)):
        t = torch.tensor([0.0, 1e-7, 0.011, 0.25, 0.5, 0.9, 1.0], dtype=torch.float64)
        back = sched.time_at_noise_ratio(sched.noise_ratio(t))
        exact((back - t).abs().max().item(), 1e-10, what=repr(sched))
        ratio = sched.noise_ratio(t)
        exact((ratio - sched.sigma(t) / sched.alpha(t)).abs().max().item(), 1e-10, what="σ/α")
    assert SCHED.time_at_noise_ratio(0.0).item() == 0.0


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="need 0 < beta_min <= beta_max; got beta_min=0"):
        VPSchedule(0.0, 20.0)
    with pytest.raises(ValueError, match="need 0 < beta_min <= beta_max"):
        VPSchedule(2.0, 1.0)
    with pytest.raises(ValueError, match=r"noise ratio σ/α must lie in \[0, 152.2\]"):
        SCHED.time_at_noise_ratio(200.0)
    with pytest.raises(ValueError, match="noise ratio"):
        SCHED.time_at_noise_ratio(torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        SCHED.alpha(1.5)


# --------------------------------------------------------------------------- one step


def _grid_pairs():
    ts = torch.tensor([0.002, 0.05, 0.3, 0.6, 1.0], dtype=torch.float64)
    return [(t, s) for t in ts for s in torch.cat([torch.zeros(1, dtype=torch.float64), ts]) if s < t]


def test_ddpm_posterior_against_gaussian_conditioning(exact):
    """q(x_s | x_t, x0) from Bayes with q(x_s | x0) = N(α_s x0, σ_s²), q(x_t | x_s) = N(α_{t|s} x_s, σ_t² − α_{t|s}² σ_s²):
    precision-weighted combination, an independent route from the closed form."""
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    for t, s in _grid_pairs():
        mean, std = ddpm_posterior(SCHED, x_t, x0, t, s)
        if s == 0:
            exact((mean - x0).abs().max().item(), what="s=0")
            assert float(std) == 0.0
            continue
        a_ts = SCHED.alpha(t) / SCHED.alpha(s)
        var_ts = SCHED.sigma2(t) - a_ts**2 * SCHED.sigma2(s)
        precision = 1 / SCHED.sigma2(s) + a_ts**2 / var_ts
        ref_mean = (SCHED.alpha(s) * x0 / SCHED.sigma2(s) + a_ts * x_t / var_ts) / precision
        exact((mean - ref_mean).abs().max().item(), what=f"t={t:.3f}")
        exact(abs(float(std) ** 2 - float(1 / precision)), what=f"var t={t:.3f}")


def test_ddim_with_eta_one_is_the_ddpm_step(exact):
    g = torch.Generator().manual_seed(1)
    x_t, x0 = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    for t, s in _grid_pairs():
        eps = (x_t - SCHED.alpha(t) * x0) / SCHED.sigma(t)
        m1, s1 = ddpm_posterior(SCHED, x_t, x0, t, s)
        m2, s2 = ddim_step(SCHED, x0, eps, t, s, eta=1.0)
        exact((m1 - m2).abs().max().item())
        exact(abs(float(s1) - float(s2)))
        assert float(ddim_step(SCHED, x0, eps, t, s, eta=0.0).std) == 0.0


def test_predict_inverts_the_forward_marginal(exact):
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(6, 1, 3, 3, generator=g, dtype=torch.float64), torch.randn(6, 1, 3, 3, generator=g,
                                                                                       dtype=torch.float64)
    t = torch.linspace(0.01, 1.0, 6, dtype=torch.float64)
    a, s = SCHED.alpha(t).reshape(-1, 1, 1, 1), SCHED.sigma(t).reshape(-1, 1, 1, 1)
    x_t = a * x0 + s * eps
    eps_hat, x0_hat = predict(lambda x, tt, c: eps, SCHED, x_t, t)
    exact((x0_hat - x0).abs().max().item())
    clipped_eps, clipped = predict(lambda x, tt, c: eps, SCHED, x_t, t, clip_x0=0.5)
    assert clipped.abs().max() <= 0.5
    exact((a * clipped + s * clipped_eps - x_t).abs().max().item(), what="clipped pair reproduces x_t")


# --------------------------------------------------------------------------- walks with known scores


@pytest.mark.parametrize("grid", ["uniform", "quadratic"])
@pytest.mark.parametrize("nfe", [1, 2, 7, 50])
def test_ddim_with_a_dirac_oracle_follows_the_exact_flow(nfe, grid, exact):
    """For Dirac data DDIM is exact at any NFE: every state is α_s x0 + (σ_s/σ_1)(x_1 − α_1 x0)."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    x1 = prior_noise(x0.shape, generator=g, dtype=torch.float64)
    seen = []
    res = ddim(dirac_eps(x0), x1, SCHED, nfe=nfe, grid=grid, trajectory_stride=1,
               callback=lambda t, x_t, pred_x0: seen.append(float(t)))
    exact((res.x0 - x0).abs().max().item())
    times = res.times
    ref = SCHED.alpha(times)[:, None, None, None, None] * x0 + (SCHED.sigma(times) / SCHED.sigma(1.0))[
        :, None, None, None, None] * (x1 - SCHED.alpha(1.0) * x0)
    exact((res.trajectory - ref).abs().max().item(), what="states")
    assert seen == time_grid(nfe, grid).t.flip(0)[:-1].tolist() and res.nfe == nfe
    assert res.trajectory.shape == (nfe + 1, *x0.shape) and res.pred_x0.shape == (nfe, *x0.shape)


@pytest.mark.parametrize("grid", ["uniform", "quadratic"])
def test_ddpm_with_a_dirac_oracle_has_the_exact_marginals(grid, exact):
    """Monte Carlo: started from q(x_1 | x0), the ancestral chain's state at every grid time is N(α_t x0, σ_t²).
    Bounds: 5 standard errors of the sample mean and variance (n draws)."""
    n = 20_000
    x0 = torch.full((n, 1), 0.4, dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    x1 = SCHED.alpha(1.0) * x0 + SCHED.sigma(1.0) * torch.randn(n, 1, generator=g, dtype=torch.float64)
    res = ddpm(dirac_eps(x0), x1, SCHED, nfe=20, grid=grid, generator=g, trajectory_stride=1)
    worst = 0.0
    for k in range(1, len(res.times) - 1):
        t = res.times[k]
        xs = res.trajectory[k, :, 0]
        m, v = float(SCHED.alpha(t) * 0.4), float(SCHED.sigma2(t))
        z_mean = abs(xs.mean().item() - m) / math.sqrt(v / n)
        z_var = abs(xs.var().item() - v) / (v * math.sqrt(2 / (n - 1)))
        assert math.isfinite(z_mean) and math.isfinite(z_var)
        worst = max(worst, z_mean, z_var)
        assert z_mean < 5 and z_var < 5, f"t={float(t):.4f}: mean z={z_mean:.2f}, var z={z_var:.2f}"
    assert worst > 0
    exact((res.x0 - x0).abs().max().item(), what="the last step (s = 0) lands on x̂0 = x0")


def test_ddim_with_a_gaussian_score_converges_to_the_flow_map():
    """DDIM with the exact score of N(μ, s²) data maps each x_1 to the closed-form flow-map image with a
    first-order error: measured max error 1.9e-2 / 9.8e-3 / 5.0e-3 at NFE 250 / 500 / 1000 (uniform grid)."""
    mu, s = torch.tensor([0.3, -0.5, 0.9], dtype=torch.float64), 0.5
    g = torch.Generator().manual_seed(5)
    x1 = prior_noise((200, 3), generator=g, dtype=torch.float64)
    target = flow_map(x1, torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64), mu, s)
    errors = {}
    for nfe in (250, 500, 1000):
        out = ddim(gaussian_eps(mu, s), x1, SCHED, nfe=nfe, grid="uniform").x0
        errors[nfe] = (out - target).abs().max().item()
    assert all(math.isfinite(e) for e in errors.values()), errors
    assert errors[1000] < 6e-3, f"DDIM at NFE 1000 is {errors[1000]:.2e} from the exact flow map"
    for a, b in ((250, 500), (500, 1000)):
        assert 1.8 < errors[a] / errors[b] < 2.2, f"not first order: {errors}"
    # and the mapped cloud has the data's statistics (starts drawn from the exact marginal at t = 1)
    start = SCHED.alpha(1.0) * mu + torch.sqrt(SCHED.alpha(1.0) ** 2 * s * s + SCHED.sigma2(1.0)) * torch.randn(
        20_000, 3, generator=g, dtype=torch.float64)
    out = ddim(gaussian_eps(mu, s), start, SCHED, nfe=1000, grid="uniform").x0
    se_mean, se_std = s / math.sqrt(20_000), s / math.sqrt(2 * 20_000)
    z_mean = ((out.mean(0) - mu).abs() / se_mean).max().item()
    z_std = ((out.std(0) - s).abs() / se_std).max().item()
    assert z_mean < 5 and z_std < 5, f"DDIM output statistics off: mean z {z_mean:.2f}, std z {z_std:.2f}"


def test_ddim_inversion_then_ddim_returns_the_input():
    """DDIM inversion follows the flow map up to t = 1, and inversion + DDIM on the same grid returns the
    input (points up to ~3 data std from the mean): measured max round-trip error 0.16 / 0.079 / 0.040 at
    NFE 100 / 200 / 400 (uniform), 2.2e-3 at NFE 4000 (quadratic); the inversion alone is up to ~22/NFE
    off the flow map."""
    mu, s = torch.tensor([0.3, -0.5], dtype=torch.float64), 0.5
    g = torch.Generator().manual_seed(6)
    x0 = mu + torch.randn(100, 2, generator=g, dtype=torch.float64)  # also points far from the data
    zero, one = torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    net = gaussian_eps(mu, s)
    errors = {}
    for grid, nfe in (("uniform", 100), ("uniform", 200), ("uniform", 400), ("quadratic", 4000)):
        latent = ddim_invert(net, x0, SCHED, nfe=nfe, grid=grid)
        back = ddim(net, latent.x0, SCHED, nfe=nfe, grid=grid)
        errors[grid, nfe] = (back.x0 - x0).abs().max().item()
        flow_err = (latent.x0 - flow_map(x0, zero, one, mu, s)).abs().max().item()
        assert math.isfinite(flow_err) and flow_err < 30 / nfe, f"{grid} {nfe}: inversion off the flow map by {flow_err}"
    assert all(math.isfinite(e) for e in errors.values()), errors
    assert errors["quadratic", 4000] < 5e-3, f"round trip at NFE 4000 off by {errors['quadratic', 4000]:.2e}"
    for a, b in ((100, 200), (200, 400)):
        assert 1.8 < errors["uniform", a] / errors["uniform", b] < 2.2, f"not first order: {errors}"


def test_ddim_inversion_to_an_intermediate_time_and_trajectory():
    """Inverting only up to t_end = 0.4 and back (measured 2.2e-2 off the flow map and 1.4e-2 round trip at NFE 300)."""
    mu, s = torch.tensor([0.1], dtype=torch.float64), 0.3
    x0 = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    net = gaussian_eps(mu, s)
    calls = []
    latent = ddim_invert(net, x0, SCHED, nfe=300, grid="uniform", t_end=0.4, trajectory_stride=100,
                         callback=lambda t, x_t, pred_x0: calls.append(float(t)))
    assert latent.trajectory.shape[0] == 1 + 2 + 1 and torch.equal(latent.trajectory[0], x0)
    assert calls[0] == 0.0 and abs(calls[-1] - 0.4 * 299 / 300) < 1e-12 and len(calls) == 300
    ref = flow_map(x0, torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64), mu, s)
    flow_err = (latent.x0 - ref).abs().max().item()
    assert flow_err < 3e-2, f"inversion to t = 0.4 off the flow map by {flow_err:.2e}"
    back = ddim(net, latent.x0, SCHED, nfe=300, grid="uniform", t_start=0.4)
    round_trip = (back.x0 - x0).abs().max().item()
    assert round_trip < 3e-2, f"round trip from t = 0.4 off by {round_trip:.2e}"


def test_ddpm_with_a_gaussian_score_reaches_the_data_distribution():
    """Ancestral sampling from N(0, I) with the exact Gaussian score: the output's mean and std match
    N(μ, s²) within 5 standard errors (20,000 draws, NFE 500; the plug-in bias is O(1/NFE))."""
    mu, s, n = 0.4, 0.3, 20_000
    g = torch.Generator().manual_seed(7)
    out = ddpm(gaussian_eps(torch.tensor(mu, dtype=torch.float64), s), prior_noise((n, 1), generator=g,
               dtype=torch.float64), SCHED, nfe=500, grid="uniform", generator=g).x0[:, 0]
    z_mean = abs(out.mean().item() - mu) / (s / math.sqrt(n))
    z_std = abs(out.std().item() - s) / (s / math.sqrt(2 * n))
    assert z_mean < 5 and z_std < 5, f"DDPM output mean {out.mean():.4f} (z {z_mean:.2f}), std {out.std():.4f} " \
                                     f"(z {z_std:.2f}) vs N({mu}, {s}²)"


def test_per_sample_start_times_equal_separate_walks(exact):
    mu, s = torch.tensor(0.2, dtype=torch.float64), 0.4
    net = gaussian_eps(mu, s)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    starts = torch.tensor([0.05, 0.5, 1.0], dtype=torch.float64)
    joint = ddim(net, x, SCHED, nfe=9, t_start=starts).x0
    for i in range(3):
        alone = ddim(net, x[i:i + 1], SCHED, nfe=9, t_start=float(starts[i])).x0
        exact((joint[i] - alone[0]).abs().max().item())
    assert walk_times(9, "quadratic", starts).shape == (10, 3)


def test_seeded_and_strided_walks_reproduce():
    x0 = torch.randn(4, 1, 2, 2)
    net = dirac_eps(x0)
    a = ddpm(net, prior_noise(x0.shape, generator=torch.Generator().manual_seed(1)), SCHED, nfe=10,
             generator=torch.Generator().manual_seed(2), trajectory_stride=4)
    b = ddpm(net, prior_noise(x0.shape, generator=torch.Generator().manual_seed(1)), SCHED, nfe=10,
             generator=torch.Generator().manual_seed(2), trajectory_stride=1)
    assert torch.equal(a.trajectory[-1], b.trajectory[-1]) and a.trajectory.shape[0] == 4
    assert torch.equal(a.trajectory[1], b.trajectory[4]) and torch.equal(a.pred_x0[1], b.pred_x0[4])
    c = ddim(net, a.trajectory[0], SCHED, nfe=10, eta=0.5, generator=torch.Generator().manual_seed(3))
    d = ddim(net, a.trajectory[0], SCHED, nfe=10, eta=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c.x0, d.x0) and c.trajectory.shape[0] == 2


def test_sampler_bad_input():
    x = torch.zeros(2, 3)
    net = lambda x, t, c=None: x  # noqa: E731
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 1000000\].*got 0"):
        ddim(net, x, SCHED, nfe=0)
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]; got 'log'"):
        ddpm(net, x, SCHED, nfe=3, grid="log")
    with pytest.raises(ValueError, match="eta must be a number >= 0"):
        ddim(net, x, SCHED, nfe=3, eta=-0.5)
    with pytest.raises(ValueError, match=r"t_start must lie in \(0, 1\]"):
        ddim(net, x, SCHED, nfe=3, t_start=0.0)
    with pytest.raises(ValueError, match=r"t_start must be a number or have shape \(2,\)"):
        ddim(net, x, SCHED, nfe=3, t_start=torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"t_end must lie in \(0, 1\]"):
        ddim_invert(net, x, SCHED, nfe=3, t_end=1.5)
    with pytest.raises(ValueError, match=r"x_start must be a floating tensor batched as \(B, \.\.\.\)"):
        ddim(net, torch.zeros(3), SCHED, nfe=3)
    with pytest.raises(ValueError, match=r"the model must return ε shaped like x_t \(2, 3\); got \(2, 1\)"):
        ddim(lambda x, t, c=None: x[:, :1], x, SCHED, nfe=3)
    with pytest.raises(ValueError, match="clip_x0 must be None or > 0"):
        ddim(net, x, SCHED, nfe=3, clip_x0=0)
    with pytest.raises(ValueError, match="trajectory_stride must be an int >= 0"):
        ddpm(net, x, SCHED, nfe=3, trajectory_stride=-1)
