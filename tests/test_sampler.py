"""I2SB Alg. 2 with an oracle network that knows X0."""

import numpy as np
import pytest
import torch

from pi2sb_lab.bridge import posterior
from pi2sb_lab.parameterization import X0Param
from pi2sb_lab.sampler import sample
from pi2sb_lab.schedule import SymmetricSchedule, time_grid


def eps_oracle(x0, sched):
    """ε-network that knows the clean endpoint: ε = (X_t − X0)/σ_t (eq. 12 solved exactly)."""

    def net(x_t, t, cond=None):
        return (x_t - x0) / sched.sigma(t.double()).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))

    return net


@pytest.mark.parametrize("nfe", [1, 2, 7, 100])
@pytest.mark.parametrize("ot_ode", [False, True])
@pytest.mark.parametrize("grid", ["uniform", "quadratic"])
def test_oracle_sampler_returns_x0(nfe, ot_ode, grid, exact):
    """With an oracle, the last step lands on X0 whatever happened before (the step to s = 0 is
    deterministic and the oracle's estimate is X0 at any state), so the endpoint alone proves little:
    the intermediate states are checked too. OT-ODE: exactly the bridge mean μ_t (Prop. 3.4).
    SDE: standardized by q(X_t | X0, X1), each step's 256 values have mean 0 and variance 1
    (bounds of 5 standard errors)."""
    sched = SymmetricSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64)
    x1 = torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64)
    calls = []
    res = sample(eps_oracle(x0, sched), x1, sched, nfe=nfe, grid=grid, ot_ode=ot_ode, generator=g, trajectory_stride=1,
                 callback=lambda t, x_t, pred_x0: calls.append((float(t), pred_x0)))
    exact((res.x0 - x0).abs().max().item(), 1e-10)
    exact([(p - x0).abs().max().item() for _, p in calls], 1e-10, "pred_x0 at every step")
    c = posterior(sched, res.times[1:-1])
    expand = lambda v: v.reshape(-1, 1, 1, 1, 1)  # noqa: E731
    mu = expand(c.mu_x0) * x0 + expand(c.mu_x1) * x1
    inner = res.trajectory[1:-1]
    if ot_ode and nfe > 1:
        exact((inner - mu).abs().flatten(1).amax(1), 1e-10, "intermediate states = μ_t")
    elif nfe > 1:
        z = ((inner - mu) / expand(c.var.sqrt())).flatten(1)
        n = z.shape[1]
        z_mean, z_var = z.mean(1), z.var(1)
        assert bool(torch.isfinite(z).all()), "NaN/inf in the intermediate states"
        assert bool((z_mean.abs() < 5 / n**0.5).all()), f"mean of standardized states per step: {z_mean.tolist()}"
        assert bool(((z_var - 1).abs() < 5 * (2 / (n - 1)) ** 0.5).all()), f"their variance per step: {z_var.tolist()}"
    assert len(calls) == nfe, "the callback must see every network evaluation"
    assert [c[0] for c in calls] == time_grid(nfe, grid).t.flip(0)[:-1].tolist()
    assert res.trajectory.shape == (nfe + 1, *x1.shape) and torch.equal(res.trajectory[0], x1)
    assert res.pred_x0.shape == (nfe, *x1.shape) and res.times.shape == (nfe + 1,)


def test_oracle_ot_ode_follows_the_posterior_mean(exact):
    """With the true X0 and no noise, every sampler state is exactly μ_t (Prop. 3.4)."""
    sched = SymmetricSchedule()
    x0, x1 = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    res = sample(X0Param(lambda x, t, c: x0, sched), x1, sched, nfe=50, ot_ode=True, trajectory_stride=1)
    c = posterior(sched, res.times)
    mu = c.mu_x0[:, None, None] * x0 + c.mu_x1[:, None, None] * x1
    exact((res.trajectory - mu).abs().max().item())


@pytest.mark.parametrize("grid", ["uniform", "quadratic"])
def test_sde_sampler_marginals_match_the_bridge(grid):
    """Monte Carlo: the oracle SDE sampler's state at each grid time is distributed as q(X_t | X0, X1).
    Tolerances are 5 standard errors of the sample mean and sample variance for n draws."""
    sched = SymmetricSchedule()
    n = 20_000
    x0 = torch.full((n, 1), 0.4, dtype=torch.float64)
    x1 = torch.full((n, 1), -0.6, dtype=torch.float64)
    res = sample(eps_oracle(x0, sched), x1, sched, nfe=25, grid=grid, generator=torch.Generator().manual_seed(7),
                 trajectory_stride=1)
    c = posterior(sched, res.times)
    checked = 0
    for k in range(1, len(res.times) - 1):
        xs = res.trajectory[k, :, 0]
        mean_ref = (c.mu_x0[k] * 0.4 - c.mu_x1[k] * 0.6).item()
        var_ref = c.var[k].item()
        se_mean = (var_ref / n) ** 0.5
        se_var = var_ref * (2 / (n - 1)) ** 0.5
        z_mean = abs(xs.mean().item() - mean_ref) / se_mean
        z_var = abs(xs.var().item() - var_ref) / se_var
        # written so that NaN fails (NaN < 5 is False)
        assert z_mean < 5 and z_var < 5, f"t={res.times[k]:.4f}: mean z={z_mean:.2f}, var z={z_var:.2f}"
        checked += 1
    assert checked == len(res.times) - 2 == 24  # every intermediate state was compared


def test_trajectory_stride_and_reproducibility():
    sched = SymmetricSchedule()
    x0, x1 = torch.randn(2, 3), torch.randn(2, 3)
    net = eps_oracle(x0, sched)
    a = sample(net, x1, sched, nfe=10, generator=torch.Generator().manual_seed(3), trajectory_stride=4)
    b = sample(net, x1, sched, nfe=10, generator=torch.Generator().manual_seed(3), trajectory_stride=1)
    c = sample(net, x1, sched, nfe=10, generator=torch.Generator().manual_seed(3))  # the default: endpoints only
    assert torch.equal(a.x0, b.x0) and torch.equal(c.x0, b.x0)
    assert c.trajectory.shape[0] == 2 and torch.equal(c.trajectory[0], x1) and c.pred_x0.shape[0] == 1
    assert a.trajectory.shape[0] == 1 + 2 + 1  # x1, steps 4 and 8, x0
    assert torch.equal(a.trajectory[1], b.trajectory[4]) and torch.equal(a.pred_x0[1], b.pred_x0[4])


def test_bad_input():
    sched = SymmetricSchedule()
    net = lambda x, t, c=None: x  # noqa: E731
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 1000000\]"):
        sample(net, x, sched, nfe=0)
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 1000000\].*got 1000000000000"):
        sample(net, x, sched, nfe=10**12)
    assert sample(net, x, sched, nfe=np.int64(2)).x0.shape == x.shape  # NumPy integers are integers
    with pytest.raises(TypeError, match=r"x1 must be a floating-point tensor .*got torch.int64"):
        sample(net, torch.zeros(2, 2, dtype=torch.int64), sched, nfe=2)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None"):
        sample(net, x, sched, nfe=2, generator=0)
    with pytest.raises(ValueError, match=r"trajectory_stride must be an integer >= 0"):
        sample(net, x, sched, nfe=2, trajectory_stride=-1)
    with pytest.raises(ValueError, match=r"the network's output has shape \(2, 1\), but x_t has \(2, 2\)"):
        sample(lambda x, t, c=None: x[:, :1], x, sched, nfe=2)
    with pytest.raises(TypeError, match="model must be a network"):
        sample(None, x, sched, nfe=2)
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]; got 'log'"):
        sample(net, x, sched, nfe=4, grid="log")
    with pytest.raises(ValueError, match="disagrees with the given grid"):
        sample(net, x, sched, nfe=4, grid=time_grid(5))
    with pytest.raises(ValueError, match="wrapped for"):
        sample(X0Param(net, SymmetricSchedule(0.2, 0.3)), x, sched, nfe=4)
