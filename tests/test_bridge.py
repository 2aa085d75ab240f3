"""The Dirac-pair bridge against independent derivations (float64, ~1e-10)."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from pi2sb_lab.bridge import eps_target, ot_velocity, posterior, sample_xt, step_posterior
from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, time_grid

SCHEDULES = [SymmetricSchedule(0.1, 0.3), SymmetricSchedule(1e-3, 1.0), ConstantSchedule(0.5)]
T = torch.linspace(0.0, 1.0, 51, dtype=torch.float64)[1:-1]


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_posterior_is_product_of_two_gaussians(sched, exact):
    """Prop. 3.3 re-derived: q ∝ Ψ̂(x|X0)·Ψ(x|X1) = N(X0, σ²)·N(X1, σ̄²) (product in precision form)."""
    s2, sb2 = sched.sigma2(T), sched.sigma_bar2(T)
    precision = 1.0 / s2 + 1.0 / sb2
    c = posterior(sched, T)
    exact((c.var - 1.0 / precision).abs().max().item(), what="var")
    exact((c.mu_x0 - (1.0 / s2) / precision).abs().max().item(), what="mu_x0")
    exact((c.mu_x1 - (1.0 / sb2) / precision).abs().max().item(), what="mu_x1")


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_posterior_is_gaussian_conditioning_of_brownian_motion(sched, exact):
    """A second derivation: X_t = X0 + W(σ²_t); condition on X_1 = X0 + W(σ²_1)."""
    s2, total = sched.sigma2(T), sched.sigma2(torch.ones((), dtype=torch.float64))
    x0, x1 = torch.tensor(0.7, dtype=torch.float64), torch.tensor(-1.3, dtype=torch.float64)
    mean_ref = x0 + s2 / total * (x1 - x0)          # Cov(X_t, X_1)/Var(X_1) = σ²_t/σ²_1
    var_ref = s2 - s2**2 / total
    c = posterior(sched, T)
    exact((c.mu_x0 * x0 + c.mu_x1 * x1 - mean_ref).abs().max().item(), what="mean")
    exact((c.var - var_ref).abs().max().item(), what="var")


def test_posterior_endpoints():
    c = posterior(SymmetricSchedule(), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert c.mu_x0.tolist() == [1.0, 0.0] and c.mu_x1.tolist() == [0.0, 1.0] and c.var.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kind", ["uniform", "quadratic"])
@pytest.mark.parametrize("nfe", [3, 20, 1000])
@pytest.mark.parametrize("sched", SCHEDULES[:2], ids=repr)
def test_ddpm_recursion_keeps_the_bridge_marginals(sched, kind, nfe, exact):
    """Second half of Prop. 3.3: iterating p(X_s | X0, X_t) from X_N = X1 with the true X0
    gives q(X_s | X0, X1) at every grid point. Moments are propagated exactly here:
    X_s = A·X0 + B·X_t + std·ε  ⇒  m_s = A·X0 + B·m_t,  v_s = B²·v_t + std²."""
    grid = time_grid(nfe, kind)
    one = torch.ones((1, 1), dtype=torch.float64)
    coef_x0, coef_x1, var = 0.0, 1.0, 0.0  # X_N = X1 exactly
    err_mean, err_var = [], []  # every step's error; exact() fails on any NaN (max() would drop it)
    for t, s in grid.steps():
        # read off A and B by probing with unit inputs
        A = step_posterior(sched, one, 0 * one, t, s).mean.item()
        B = step_posterior(sched, 0 * one, one, t, s).mean.item()
        std = step_posterior(sched, one, one, t, s).std.item()
        coef_x0, coef_x1, var = A + B * coef_x0, B * coef_x1, B * B * var + std * std
        q = posterior(sched, s)
        err_mean += [abs(coef_x0 - q.mu_x0.item()), abs(coef_x1 - q.mu_x1.item())]
        err_var.append(abs(var - q.var.item()))
    exact(err_mean, what="mean")
    exact(err_var, what="var")


@pytest.mark.parametrize("c", [10.0, 0.1, 1e-3, 1e-6])
def test_scaling_beta_scales_variance_and_keeps_mean(c, exact):
    """Prop. 3.4: β → cβ multiplies Σ_t by c and leaves μ_t; as c → 0 the bridge turns deterministic."""
    base = SymmetricSchedule(0.1, 0.3)
    p, q = posterior(base, T), posterior(base.scaled(c), T)
    exact(((q.var / p.var) - c).abs().max().item() / c, what="var ratio (relative)")
    exact((q.mu_x0 - p.mu_x0).abs().max().item(), what="mu")
    exact((q.mu_x1 - p.mu_x1).abs().max().item(), what="mu1")


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_ot_velocity_is_the_time_derivative_of_the_posterior_mean(sched, exact):
    """Prop. 3.4: the OT-ODE drift evaluated on μ_t equals dμ_t/dt (autograd, exact in float64)."""
    x0, x1 = torch.tensor([[0.3, -1.0]], dtype=torch.float64), torch.tensor([[-0.8, 0.5]], dtype=torch.float64)
    errors = []
    for ti in T.tolist():
        t = torch.tensor(ti, dtype=torch.float64, requires_grad=True)
        c = posterior(sched, t)
        mu = c.mu_x0 * x0 + c.mu_x1 * x1
        dmu = torch.stack([torch.autograd.grad(mu[0, k], t, retain_graph=True)[0] for k in range(2)])
        v = ot_velocity(sched, mu.detach(), x0, t.detach())
        errors.append((v[0] - dmu).abs().max().item())
    exact(errors)


def test_ot_ode_integrated_from_x1_follows_the_posterior_mean(exact):
    """Prop. 3.4 end to end: integrate dX = v_t dt backwards from X_1 at t = 1 (scipy DOP853)."""
    sched = SymmetricSchedule(0.1, 0.3)
    x0 = np.array([0.3, -1.0])
    x1 = np.array([-0.8, 0.5])
    x0_t = torch.tensor(x0)[None]

    def rhs(t, x):
        return ot_velocity(sched, torch.tensor(x)[None], x0_t, torch.tensor(t)).numpy()[0]

    t_eval = np.linspace(1.0, 0.02, 50)
    sol = solve_ivp(rhs, (1.0, 0.02), x1, method="DOP853", t_eval=t_eval, rtol=1e-13, atol=1e-13)
    c = posterior(sched, torch.tensor(t_eval))
    mu = c.mu_x0.numpy()[:, None] * x0 + c.mu_x1.numpy()[:, None] * x1
    exact(np.abs(sol.y.T - mu).max(), 1e-9)


def test_constant_beta_gives_the_ot_displacement(exact):
    """Cor. 3.5: constant β ⇒ μ_t = (1 − t)X0 + tX1 and v_t = (X_t − X0)/t, for any β."""
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for beta in (1e-4, 0.3, 5.0):
        sched = ConstantSchedule(beta)
        for t in T[::5].tolist():
            mu = sample_xt(sched, x0, x1, t, ot_ode=True)
            exact((mu - ((1 - t) * x0 + t * x1)).abs().max().item(), what="mean")
            exact((ot_velocity(sched, mu, x0, t) - (mu - x0) / t).abs().max().item(), what="velocity")


def test_sample_xt_moments_and_determinism(gen):
    sched = SymmetricSchedule()
    x0 = torch.zeros(20000, 1, dtype=torch.float64)
    x1 = torch.ones(20000, 1, dtype=torch.float64)
    t = torch.full((20000,), 0.3, dtype=torch.float64)
    xt = sample_xt(sched, x0, x1, t, generator=gen)
    c = posterior(sched, 0.3)
    n = xt.shape[0]
    # tolerances from the sampling distributions of the mean and of the variance (5 standard errors)
    assert abs(xt.mean().item() - c.mu_x1.item()) < 5 * (c.var.item() / n) ** 0.5
    assert abs(xt.var().item() - c.var.item()) < 5 * c.var.item() * (2 / (n - 1)) ** 0.5
    again = sample_xt(sched, x0, x1, t, generator=torch.Generator().manual_seed(1234))
    assert torch.equal(xt, again)


def test_eps_target_recovers_x0(exact):
    sched = SymmetricSchedule()
    x0, x1 = torch.randn(4, 2, 3, 3, dtype=torch.float64), torch.randn(4, 2, 3, 3, dtype=torch.float64)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    xt = sample_xt(sched, x0, x1, t, generator=torch.Generator().manual_seed(0))
    eps = eps_target(sched, xt, x0, t)
    exact((xt - sched.sigma(t).reshape(-1, 1, 1, 1) * eps - x0).abs().max().item())


def test_bad_input():
    sched = SymmetricSchedule()
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        posterior(sched, 1.01)
    with pytest.raises(ValueError, match=r"x0 and x1 must have the same shape; got \(3, 2\) and \(3, 3\)"):
        sample_xt(sched, x, torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\)"):
        sample_xt(sched, x, x, torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="s < t"):
        step_posterior(sched, x, x, 0.3, 0.5)
    with pytest.raises(ValueError, match="t must be > 0"):
        eps_target(sched, x, x, 0.0)
    with pytest.raises(ValueError, match=r"s must lie in \[0, 1\]"):
        step_posterior(sched, x, x, 0.5, -0.1)
    with pytest.raises(ValueError, match=r"s must be a scalar or have shape \(batch,\) = \(3,\); got shape \(2,\)"):
        step_posterior(sched, x, x, torch.full((3,), 0.5), torch.full((2,), 0.2))
    with pytest.raises(TypeError, match=r"x0 must be a floating-point tensor .*got torch.int64"):
        sample_xt(sched, torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(\) \(the data is 0-d"):
        sample_xt(sched, torch.tensor(0.0), torch.tensor(1.0), torch.tensor([0.5]))
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None .*got 0 \(int\)"):
        sample_xt(sched, x, x, 0.5, generator=0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\].*NaN"):
        ot_velocity(sched, x, x, torch.tensor([0.5, float("nan"), 0.2]))
    # 0-d data with a 0-d time is fine
    assert sample_xt(sched, torch.tensor(0.0), torch.tensor(1.0), 0.5, ot_ode=True).shape == ()
