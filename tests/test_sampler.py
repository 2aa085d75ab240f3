"""I2SB Alg. 2 with an oracle network that knows X0."""

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
    sched = SymmetricSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    x1 = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    calls = []
    res = sample(eps_oracle(x0, sched), x1, sched, nfe=nfe, grid=grid, ot_ode=ot_ode, generator=g, trajectory_stride=1,
                 callback=lambda t, x_t, pred_x0: calls.append((float(t), pred_x0)))
    exact((res.x0 - x0).abs().max().item(), 1e-10)
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
    worst = 0.0
    for k in range(1, len(res.times) - 1):
        xs = res.trajectory[k, :, 0]
        mean_ref = (c.mu_x0[k] * 0.4 - c.mu_x1[k] * 0.6).item()
        var_ref = c.var[k].item()
        se_mean = (var_ref / n) ** 0.5
        se_var = var_ref * (2 / (n - 1)) ** 0.5
        z_mean = abs(xs.mean().item() - mean_ref) / se_mean
        z_var = abs(xs.var().item() - var_ref) / se_var
        worst = max(worst, z_mean, z_var)
        assert z_mean < 5 and z_var < 5, f"t={res.times[k]:.4f}: mean z={z_mean:.2f}, var z={z_var:.2f}"
    assert worst > 0  # the check compared real draws


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
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        sample(net, x, sched, nfe=0)
    with pytest.raises(ValueError, match=r"grid must be one of \['uniform', 'quadratic'\]; got 'log'"):
        sample(net, x, sched, nfe=4, grid="log")
    with pytest.raises(ValueError, match="disagrees with the given grid"):
        sample(net, x, sched, nfe=4, grid=time_grid(5))
    with pytest.raises(ValueError, match="wrapped for"):
        sample(X0Param(net, SymmetricSchedule(0.2, 0.3)), x, sched, nfe=4)
