"""Bridge families and the η-sampler against independent derivations (float64, ~1e-10).

Each family is a linear SDE dY = f Y dt + g dW on Y = X − κ X1. The references here use
only f and g² (``_f``, ``_g2``): moments by numerical quadrature, then Gaussian
conditioning, never the families' closed forms.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from pi2sb_lab.bridge import eps_target, ode_velocity, posterior, step_posterior
from pi2sb_lab.families import (DDBMVEBridge, DDBMVPBridge, GOUBBridge, I2SBBridge, as_family, make_family)
from pi2sb_lab.parameterization import EpsParam, X0Param
from pi2sb_lab.sampler import clear_step_tables, implicit_step, sample, step_table
from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, TimeGrid, time_grid

FAMILIES = [I2SBBridge(SymmetricSchedule(0.1, 0.3)), I2SBBridge(ConstantSchedule(0.5)), DDBMVPBridge(),
            DDBMVPBridge(0.1, 20.0), DDBMVEBridge(), DDBMVEBridge(1.0), GOUBBridge(), GOUBBridge(1.0, 1.0)]
IDS = [repr(f) for f in FAMILIES]
ETAS = [0.0, 0.3, 0.7, 1.0]


def _scalar(fn, t: float) -> float:
    return float(fn(torch.tensor(t, dtype=torch.float64)))


class Quadrature:
    """Moments of Y given Y_0 = 0 from f and g² alone: F(t) = ∫₀ᵗ f, Var Y_t = ∫₀ᵗ e^{2(F(t) − F(τ))} g²(τ) dτ,
    Cov(Y_u, Y_v) = e^{F(v) − F(u)} Var Y_u for u ≤ v; E[Y_t | Y_0] = e^{F(t)} Y_0."""

    def __init__(self, family):
        self.f = lambda t: _scalar(family._f, t)
        self.g2 = lambda t: _scalar(family._g2, t)
        self.kappa = family.kappa

    def F(self, t):
        return quad(self.f, 0.0, t, points=[0.5] if t > 0.5 else None, epsabs=1e-15, epsrel=1e-13)[0]

    def var(self, t):
        Ft = self.F(t)
        return quad(lambda u: math.exp(2 * (Ft - self.F(u))) * self.g2(u), 0.0, t,
                    points=[0.5] if t > 0.5 else None, epsabs=1e-15, epsrel=1e-13)[0]

    def cov(self, u, v):
        u, v = min(u, v), max(u, v)
        return math.exp(self.F(v) - self.F(u)) * self.var(u)

    def conditional(self, target, given):
        """E[X_target | X0, X_given…, ] as coefficients on (X0, X1, X_given[:-1]…) — ``given`` ends with 1,
        the pinned end, and var. X = Y + κ X1, E[Y_u | Y0] = e^{F(u)} Y0."""
        times = [target] + list(given)
        C = np.array([[self.cov(u, v) for v in times] for u in times])
        w = np.linalg.solve(C[1:, 1:], C[1:, 0])
        var = C[0, 0] - C[1:, 0] @ w
        alpha = np.array([math.exp(self.F(u)) for u in times])
        # mean of Y_target = α_0' Y0 + w·(Y_given − α Y0), with Y = X − κ X1, Y0 = X0 − κ X1, Y_1 = X1 − κ X1
        coef_y0 = alpha[0] - w @ alpha[1:]
        coef_given = w
        # back to X: X_target = κ X1 + coef_y0 (X0 − κ X1) + Σ w_i (X_i − κ X1) [X_1 = X1]
        x0 = coef_y0
        x1 = self.kappa * (1 - coef_y0 - coef_given.sum()) + coef_given[-1]
        return x0, x1, coef_given[:-1], var


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_coefficients_are_the_gaussian_conditioning_of_the_sde(family, exact):
    """a_t, b_t, c²_t against E/Var[X_t | X0, X_1 = X1] of the family's own SDE, moments by quadrature.
    Variances are compared relative to Var Y_1 (the VE bridge's is 6,400)."""
    q = Quadrature(family)
    scale = max(1.0, q.var(1.0))
    times = [0.013, 0.2, 0.5, 0.61, 0.9, 0.995]
    c = posterior(family, torch.tensor(times, dtype=torch.float64))
    err_a, err_b, err_var = [], [], []
    for i, t in enumerate(times):
        a, b, _, var = q.conditional(t, [1.0])
        err_a.append(abs(c.mu_x0[i].item() - a))
        err_b.append(abs(c.mu_x1[i].item() - b))
        err_var.append(abs(c.var[i].item() - var) / scale)
    exact(err_a, what="a_t")
    exact(err_b, what="b_t")
    exact(err_var, what="c_t² / Var Y_1")


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_markov_step_is_the_gaussian_conditioning_of_the_sde(family, exact):
    """step_posterior against p(X_s | X0, X_t, X_1 = X1) by quadrature: the X1 weight beyond κ's vanishes
    (the bridge is Markov) and the implicit step at η = 1 is the same kernel."""
    q = Quadrature(family)
    scale = max(1.0, q.var(1.0))
    one = torch.ones((1, 1), dtype=torch.float64)
    zero = 0 * one
    errs, errs_eta1 = [], []
    for t, s in [(0.9, 0.6), (0.5, 0.49), (0.3, 0.01), (0.7, 0.2)]:
        x0_ref, x1_ref, (xt_ref,), var_ref = q.conditional(s, [t, 1.0])
        probe = lambda x0, xt, x1: step_posterior(family, x0, xt, t, s, x1=x1).mean.item()  # noqa: E731
        got = (probe(one, zero, zero), probe(zero, zero, one), probe(zero, one, zero),
               step_posterior(family, one, one, t, s, x1=one).std.item() ** 2)
        errs += [abs(got[0] - x0_ref), abs(got[1] - x1_ref), abs(got[2] - xt_ref), abs(got[3] - var_ref) / scale]
        tt, ss = torch.tensor([t], dtype=torch.float64), torch.tensor([s], dtype=torch.float64)
        a, b, k, rho = implicit_step(family, tt, ss, 1.0)
        errs_eta1 += [abs(a.item() - got[0]), abs(b.item() - got[1]), abs(k.item() - got[2]),
                      abs(rho.item() ** 2 - got[3]) / scale]
    exact(errs, what="step_posterior vs quadrature")
    exact(errs_eta1, what="implicit step at eta=1 vs step_posterior")


def _propagate(family, grid, eta, boot_noise=True):
    """Exact moments of the chain started at X_1 = X1 with the oracle X̂0 = X0: X_s = A X0 + B X1 + K X_t + ρ z
    ⇒ (m0, m1, v) ← (A + K m0, B + K m1, K² v + ρ²). Returns the errors against q(X_s | X0, X1)."""
    table = step_table(family, grid, eta, boot_noise=boot_noise)
    m0, m1, v = 0.0, 1.0, 0.0
    err_mean, err_var = [], []
    scale = max(1.0, float(posterior(family, 0.5).var) * 4)
    for n, (_, s) in enumerate(grid.steps()):
        A, B, K, rho = (float(table.x0[n]), float(table.x1[n]), float(table.xt[n]), float(table.rho[n]))
        m0, m1, v = A + K * m0, B + K * m1, K * K * v + rho * rho
        c = posterior(family, s)
        err_mean += [abs(m0 - c.mu_x0.item()), abs(m1 - c.mu_x1.item())]
        err_var.append(abs(v - c.var.item()) / scale)
    return err_mean, err_var


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
@pytest.mark.parametrize("eta", ETAS + [0.999999])
def test_every_eta_keeps_every_marginal(family, eta, exact):
    """With the oracle X̂0 = X0, the chain's law at every grid time is q(X_s | X0, X1), whatever ρ ∈ [0, ρ_Markov]
    — once the first step from X1 (c_1 = 0, where only ρ = c_s can create the spread) is Markovian (booting
    noise). Without it the mean is still exact at every η and the variance is η² times … smaller: checked
    as var ≤ c²_s."""
    for grid in (time_grid(7, "uniform"), time_grid(13, "quadratic")):
        err_mean, err_var = _propagate(family, grid, eta)
        exact(err_mean, what="mean")
        exact(err_var, what="var")
        err_mean, _ = _propagate(family, grid, eta, boot_noise=False)
        exact(err_mean, what="mean without booting noise")


def _oracle(x0):
    return X0Param(lambda x_t, t, cond=None: x0.expand_as(x_t), SymmetricSchedule())


@pytest.mark.parametrize("family", FAMILIES[::2], ids=IDS[::2])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_sampler_states_follow_the_bridge_marginals(family, eta, exact):
    """The sampler itself (not only its table), oracle X̂0: every state standardized by q(X_t | X0, X1) has mean 0,
    variance 1 over 4,096 values (bounds of 5 standard errors; η = 0.5 with booting noise); η = 0 without it stays
    exactly on the mean μ_t."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(1, 4096, generator=g, dtype=torch.float64), torch.randn(1, 4096, generator=g, dtype=torch.float64)
    model = X0Param(lambda x_t, t, cond=None: x0, family)
    res = sample(model, x1, family, nfe=9, grid="quadratic", eta=eta, boot_noise=eta > 0, generator=g,
                 trajectory_stride=1)
    exact((res.x0 - x0).abs().max().item(), what="endpoint")
    c = posterior(family, res.times[1:-1])
    mu = c.mu_x0[:, None, None] * x0 + c.mu_x1[:, None, None] * x1
    inner = res.trajectory[1:-1]
    if eta == 0:
        exact((inner - mu).abs().max().item(), what="eta=0 states = mu_t")
        return
    z = ((inner - mu) / c.var.sqrt()[:, None, None]).flatten(1)
    n = z.shape[1]
    assert bool((z.mean(1).abs() < 5 / n**0.5).all()), f"mean of standardized states: {z.mean(1).tolist()}"
    assert bool(((z.var(1) - 1).abs() < 5 * (2 / (n - 1)) ** 0.5).all()), f"variance: {z.var(1).tolist()}"


def test_i2sb_ot_ode_is_the_implicit_sampler_from_the_dirac_end(exact):
    """I2SB's OT-ODE (Prop. 3.4: the sampler's mean, ``ot_ode=True``) and the implicit sampler (η = 0) agree where
    the papers say: started at X1 (c_1 = 0) with the true X0, both walk the bridge mean μ_t exactly."""
    sched = SymmetricSchedule()
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    model = X0Param(lambda x_t, t, cond=None: x0, sched)
    ot = sample(model, x1, sched, nfe=20, ot_ode=True, trajectory_stride=1)
    implicit = sample(model, x1, sched, nfe=20, eta=0.0, trajectory_stride=1)
    exact((ot.trajectory - implicit.trajectory).abs().max().item(), what="OT-ODE vs eta=0")


def test_eta_one_is_the_step_posterior_loop_bit_for_bit():
    """η = 1 with the cached table is the old loop — step_posterior at every step — to the last bit."""
    clear_step_tables()
    sched = SymmetricSchedule()
    net = torch.nn.Linear(4, 4).double()
    model = EpsParam(lambda x_t, t, cond=None: net(x_t) * t[:, None], sched)
    x1 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for _ in range(2):  # the second call reads the cached table
        res = sample(model, x1, sched, nfe=11, generator=torch.Generator().manual_seed(2))
        x, g = x1, torch.Generator().manual_seed(2)
        for t, s in time_grid(11, "quadratic").steps():
            mean, std = step_posterior(sched, model.pred_x0(x, t), x, t, s)
            x = mean if s == 0 else mean + std * torch.randn(x.shape, generator=g, dtype=x.dtype)
        assert torch.equal(res.x0, x)
    assert step_table(sched, time_grid(11, "quadratic")) is step_table(I2SBBridge(sched), time_grid(11, "quadratic"))


def _gaussian_flow(family, m0, v0, x1, t0, x_t0, t):
    """The exact PF-ODE flow for Gaussian data X0 ~ N(m0, v0): x_t = M_t + (S_t/S_t0)(x_t0 − M_t0), with
    M = a m0 + b X1 and S² = a² v0 + c² (the flow of a Gaussian family is affine)."""
    c0, c = posterior(family, t0), posterior(family, t)
    M0, M = c0.mu_x0 * m0 + c0.mu_x1 * x1, c.mu_x0 * m0 + c.mu_x1 * x1
    S0, S = (c0.mu_x0**2 * v0 + c0.var).sqrt(), (c.mu_x0**2 * v0 + c.var).sqrt()
    return M + S / S0 * (x_t0 - M0)


def _denoiser(family, m0, v0, x1):
    def d(x_t, t):
        c = posterior(family, t)
        return m0 + c.mu_x0 * v0 / (c.mu_x0**2 * v0 + c.var) * (x_t - c.mu_x0 * m0 - c.mu_x1 * x1)
    return d


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_ode_velocity_is_the_gaussian_flow_derivative(family, exact):
    """ode_velocity with the exact denoiser of Gaussian data is d/dt of the exact affine flow (Richardson
    extrapolated central differences), so it is the family's probability-flow ODE."""
    m0, v0, x1 = 0.3, 0.4, -0.8
    den = _denoiser(family, m0, v0, x1)
    errs = []
    for t0 in (0.2, 0.45, 0.8):  # not ½: the symmetric β has a kink there, which central differences straddle
        x = torch.tensor([[1.1]], dtype=torch.float64)
        t = torch.tensor(t0, dtype=torch.float64)
        v = ode_velocity(family, x, den(x, t), torch.full_like(x, x1), t).item()
        flow = lambda h: _gaussian_flow(family, m0, v0, x1, t0, x.item(), t0 + h).item()  # noqa: E731
        d = lambda h: (flow(h) - flow(-h)) / (2 * h)  # noqa: E731
        h = 1e-3
        r1, r2 = (4 * d(h / 2) - d(h)) / 3, (4 * d(h / 4) - d(h / 2)) / 3  # O(h⁴) …
        ref = r2 + (r2 - r1) / 15                                           # … then O(h⁶)
        errs.append(abs(v - ref) / max(1.0, abs(ref)))
    exact(errs, 1e-9, what="velocity (relative)")


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_implicit_sampler_is_deterministic_and_converges_to_the_ode(family, exact):
    """ρ = 0: no noise is drawn (two generators, one result), and as the steps grow the walk from x_t0 at t0 = 0.9
    to t = 0 approaches the exact PF-ODE flow at first order (DBIM: the η = 0 step is a first-order ODE solver)."""
    m0, v0, x1 = 0.3, 0.4, -0.8
    den = _denoiser(family, m0, v0, x1)
    t0 = 0.9
    start = torch.tensor([[-1.3], [0.4], [2.0]], dtype=torch.float64)
    exact_end = _gaussian_flow(family, m0, v0, x1, t0, start, 0.0)
    errors = []
    for n in (100, 200, 400):
        grid = TimeGrid(t=torch.linspace(0, t0, n + 1, dtype=torch.float64), kind="uniform")
        table = step_table(family, grid, 0.0)
        assert float(table.rho.abs().max()) == 0.0
        x = start
        for k, (t, _) in enumerate(grid.steps()):
            x = table.x0[k] * den(x, t) + table.x1[k] * x1 + table.xt[k] * x
        errors.append((x - exact_end).abs().max().item())
    assert errors[2] < 2e-2 * max(1.0, abs(exact_end).max().item()), f"error at 400 steps {errors}"
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.6 < r < 2.4 for r in ratios), f"first order: halving the step should halve the error; {errors}"
    # and through sample(): η = 0 ignores the generator
    net = torch.nn.Linear(2, 2).double()
    model = X0Param(lambda x_t, t, cond=None: torch.tanh(net(x_t)), family)
    x1s = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = sample(model, x1s, family, nfe=6, eta=0.0, generator=torch.Generator().manual_seed(1)).x0
    b = sample(model, x1s, family, nfe=6, eta=0.0, generator=torch.Generator().manual_seed(2)).x0
    assert torch.equal(a, b)


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_eps_parameterization_inverts_its_target(family, exact):
    """X̂0 from the ε target is X0 again (GOUB's involves X1), and the I2SB target is eq. 12."""
    g = torch.Generator().manual_seed(5)
    x0, x1, eps = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.linspace(0.05, 0.95, 6, dtype=torch.float64)
    c = posterior(family, t)
    x_t = c.mu_x0[:, None] * x0 + c.mu_x1[:, None] * x1 + c.var.sqrt()[:, None] * eps
    target = eps_target(family, x_t, x0, t, x1=x1)
    model = EpsParam(lambda x, tt, cond=None: target, family)
    kw = {"x1": x1} if family.needs_x1 else {}
    exact((model.pred_x0(x_t, t, **kw) - x0).abs().max().item(), what="pred_x0(target) = x0")


def test_families_by_name_and_bad_input():
    assert make_family("ddbm-vp") == DDBMVPBridge(0.1, 2.0)
    assert as_family(SymmetricSchedule()) == I2SBBridge(SymmetricSchedule())
    with pytest.raises(ValueError, match="family must be one of"):
        make_family("ddbm")
    with pytest.raises(ValueError, match="eta"):
        sample(_oracle(torch.zeros(1, 2)), torch.zeros(1, 2), SymmetricSchedule(), nfe=2, eta=1.5)
    with pytest.raises(ValueError, match="sigma_max"):
        DDBMVEBridge(-1.0)
    with pytest.raises(ValueError, match="pass x1"):
        step_posterior(GOUBBridge(), torch.zeros(1, 2), torch.zeros(1, 2), 0.5, 0.2)
    with pytest.raises(TypeError, match="BridgeFamily"):
        posterior("i2sb", 0.5)
