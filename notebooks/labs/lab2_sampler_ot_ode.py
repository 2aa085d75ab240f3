# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version,-kernelspec
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lab 2 · The sampler and the OT-ODE limit
#
# **Reading:** I2SB §3.2–3.3: Alg. 2 (generation), Prop. 3.4 (the OT-ODE) and Cor. 3.5 (β → 0).
#
# A trained I2SB network predicts the clean $X_0$ from a state $X_t$. Generation (Alg. 2) walks a grid
# from $t=1$ (the degraded input) to $t=0$: at each step it asks the network for $\hat X_0$ and draws
# $X_s\sim p(X_s\mid \hat X_0, X_t)$ — the DDPM step of Lab 1. Dropping the noise of those steps gives
# the OT-ODE (Prop. 3.4): with the true $X_0$ its path is the bridge's mean $\mu_t$. As $\beta\to 0$ the
# stochastic paths collapse onto that straight path (Cor. 3.5). In this lab you
#
# 1. implement the sampling loop and check it against the library's `sampler.sample`;
# 2. measure how far the stochastic paths stray from the OT-ODE path as β shrinks.
#
# Write your code where it says `YOUR CODE HERE`, then *Run All*; do not edit the `# graded` cells.

# %% tags=["parameters"]
SEED = 0                          # seed of the sampling noise
N_PATHS = 2000                    # paths per run
NFE = 40                          # sampler steps
SCALES = [1.0, 0.1, 0.01, 0.001]  # β multipliers c of part 2, largest first

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import torch

from pi2sb_lab.bridge import posterior, randn_like, step_posterior
from pi2sb_lab.labs.check import close, finite, implemented, scales_like
from pi2sb_lab.parameterization import X0Param
from pi2sb_lab.sampler import sample
from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, time_grid

torch.set_default_dtype(torch.float64)
schedule = SymmetricSchedule(0.1, 0.3)
X0 = torch.tensor([-1.0, 0.5])     # the clean point
X1 = torch.tensor([1.5, -0.5])     # its degraded partner


def oracle(x_t, t):
    """A perfect network: it always predicts the true X0."""
    return X0.expand_as(x_t)


def bridge_mean(schedule, times):
    """μ_t = mu_x0·X0 + mu_x1·X1 at each of ``times``: shape (len(times), 2)."""
    c = posterior(schedule, times)
    return c.mu_x0[:, None] * X0 + c.mu_x1[:, None] * X1


# %% [markdown]
# ## Part 1 · The sampling loop (I2SB Alg. 2)
#
# `grid.steps()` yields the pairs $(t_n, t_{n-1})$ from $n=N$ down to 1. At each: predict
# $\hat X_0$ = `pred_x0(x, t)`, take `mean, std = step_posterior(schedule, x0_hat, x, t, s)`, and move to
# `mean + std * randn_like(x, generator)` — or to `mean` alone when `ot_ode` is set, and always at the
# last step ($s=0$, where std is 0 anyway: draw no noise there). Return the whole path.

# %% nbgrader={"grade": false, "grade_id": "bridge_sample", "locked": false, "schema_version": 3, "solution": true}
def bridge_sample(pred_x0, x1, schedule, grid, *, ot_ode=False, generator=None):
    """States from X1 at t = 1 to t = 0 on ``grid`` (a TimeGrid): a tensor (grid.nfe + 1, *x1.shape)."""
    ### BEGIN SOLUTION
    x = x1
    path = [x]
    for t, s in grid.steps():
        x0_hat = pred_x0(x, t)
        mean, std = step_posterior(schedule, x0_hat, x, t, s)
        x = mean if (ot_ode or s == 0) else mean + std * randn_like(x, generator)
        path.append(x)
    return torch.stack(path)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ode_matches_library", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: with an imperfect network and no noise, your path is the library sampler's, step by step
def network(x_t, t):
    """An imperfect x0-network; t is 0-d (your loop) or one time per sample (the library)."""
    return 0.6 * torch.tanh(x_t) - 0.3 * t.reshape(-1, 1)


x1 = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
for kind in ("uniform", "quadratic"):
    mine = implemented(bridge_sample, network, x1, schedule, time_grid(12, kind), ot_ode=True)
    ref = sample(X0Param(lambda x, t, cond=None: network(x, t), schedule), x1, schedule, nfe=12, grid=kind,
                 ot_ode=True, trajectory_stride=1).trajectory
    close(f"the OT-ODE path on the {kind} grid", mine, ref,
          hint="Each step: x0_hat = pred_x0(x, t), then the step posterior's mean (no noise).")
### BEGIN HIDDEN TESTS
other = ConstantSchedule(0.5)
mine = bridge_sample(network, x1, other, time_grid(7, "uniform"), ot_ode=True)
ref = sample(X0Param(lambda x, t, cond=None: network(x, t), other), x1, other, nfe=7, grid="uniform", ot_ode=True,
             trajectory_stride=1).trajectory
close("the OT-ODE path under a constant β", mine, ref)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ode_oracle_is_the_mean", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: with the true X0 the OT-ODE path is the bridge's mean μ_t (Prop. 3.4)
grid = time_grid(NFE, "quadratic")
path = implemented(bridge_sample, oracle, X1.expand(3, 2).clone(), schedule, grid, ot_ode=True)
close("the OT-ODE path with the oracle", path, bridge_mean(schedule, grid.t.flip(0))[:, None, :].expand_as(path),
      hint="Prop. 3.4: no noise, and each step's mean with the true X0.")

# %% nbgrader={"grade": true, "grade_id": "sde_oracle_marginals", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: with noise and the true X0, the states have the bridge's marginals and the path ends on X0
grid = time_grid(NFE, "uniform")
path = implemented(bridge_sample, oracle, X1.expand(N_PATHS, 2).clone(), schedule, grid,
                   generator=torch.Generator().manual_seed(SEED))
finite("path", path)
close("the last state", path[-1], X0.expand(N_PATHS, 2), tol=1e-12, hint="Draw no noise at the last step.")
times = grid.t.flip(0)
for k in range(1, NFE):
    c = posterior(schedule, times[k])
    z = ((path[k].mean(0) - (c.mu_x0 * X0 + c.mu_x1 * X1)).abs() / (c.var / N_PATHS).sqrt()).max().item()
    zv = ((path[k].var(0) - c.var).abs() / (c.var * (2 / (N_PATHS - 1)) ** 0.5)).max().item()
    assert z < 5 and zv < 5, (f"at t={times[k]:.3f} the states are off the bridge's marginal by {max(z, zv):.1f} "
                              "standard errors: is the noise std * randn_like(x, generator) added at each step?")

# %% [markdown]
# ## Part 2 · The OT-ODE limit (Cor. 3.5)
#
# Scale the schedule, $\beta\to c\,\beta$ (`SymmetricSchedule(0.1, 0.3).scaled(c)`), and run the
# library's `sample` (so that part 1 cannot leak into part 2) with the oracle, `N_PATHS` paths from
# $X_1$, the uniform grid and a generator seeded with `seed`, keeping every state
# (`trajectory_stride=1`; `result.trajectory` is `(NFE + 1, N_PATHS, 2)`, `result.times` its times).
# Return the path's deviation: over the grid times, the largest root-mean-square distance
# $\sqrt{\tfrac1N\sum_n\lVert X_t^{(n)}-\mu_t\rVert^2}$ between the paths and the OT-ODE path
# $\mu_t$ (`bridge_mean`), as a Python float.

# %% nbgrader={"grade": false, "grade_id": "path_deviation", "locked": false, "schema_version": 3, "solution": true}
def path_deviation(scale, n_paths, nfe, seed):
    """Largest RMS distance between the SDE paths and the OT-ODE path μ_t under β scaled by ``scale``."""
    ### BEGIN SOLUTION
    sched = SymmetricSchedule(0.1, 0.3).scaled(scale)
    model = X0Param(lambda x, t, cond=None: oracle(x, t), sched)
    res = sample(model, X1.expand(n_paths, 2).clone(), sched, nfe=nfe, grid="uniform",
                 generator=torch.Generator().manual_seed(seed), trajectory_stride=1)
    mean = bridge_mean(sched, res.times)[:, None, :]
    rms = (res.trajectory - mean).square().sum(-1).mean(-1).sqrt()
    return rms.max().item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "deviation_value", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: the deviation at c = 1 is a positive number of the bridge's size
dev = implemented(path_deviation, 1.0, N_PATHS, NFE, SEED)
assert isinstance(dev, float), f"path_deviation must return a Python float; got {type(dev).__name__}"
peak_std = posterior(schedule, torch.tensor(0.5)).var.sqrt().item()
assert 0.5 * peak_std < dev < 3 * peak_std, (f"deviation {dev:.4g} at c = 1 is far from the bridge's peak std "
                                             f"{peak_std:.4g} (per coordinate): is it a root-mean-square distance?")
### BEGIN HIDDEN TESTS
res = sample(X0Param(lambda x, t, cond=None: oracle(x, t), schedule), X1.expand(N_PATHS, 2).clone(), schedule,
             nfe=NFE, grid="uniform", generator=torch.Generator().manual_seed(SEED), trajectory_stride=1)
ref = (res.trajectory - bridge_mean(schedule, res.times)[:, None, :]).square().sum(-1).mean(-1).sqrt().max().item()
close("the deviation at c = 1", torch.tensor(dev), torch.tensor(ref), hint="Max over t of the RMS over paths.")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "deviation_shrinks_like_sqrt_c", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: with the same noise, the paths are μ_t + √c × (their c = 1 excursion): the deviation scales as √c
deviations = [implemented(path_deviation, c, N_PATHS, NFE, SEED) for c in SCALES]
for c, d in zip(SCALES, deviations):
    print(f"c = {c:<8g} deviation = {d:.6f}")
assert all(a > b for a, b in zip(deviations, deviations[1:])), f"the deviation must shrink with c; got {deviations}"
scales_like("the deviation", deviations, SCALES, power=0.5,
            hint="The step std scales by √c while μ_t does not move (Cor. 3.5).")
