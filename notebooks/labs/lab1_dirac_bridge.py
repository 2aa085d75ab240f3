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
# # Lab 1 · The Dirac-pair bridge
#
# **Reading:** I2SB (Liu et al., 2023) §3, Prop. 3.3 and eq. 4; P-I2SB (Qiu et al., 2025) Thm. 4.1.
#
# Fix one clean point $X_0$ and one degraded point $X_1$. With zero drift ($f := 0$) the process
# between them is Brownian motion with a time-varying rate $\beta(t)$; write
# $\sigma_t^2=\int_0^t\beta$ and $\bar\sigma_t^2=\int_t^1\beta$. Time runs from clean ($t=0$) to
# degraded ($t=1$). In this lab you
#
# 1. derive and implement the bridge marginal $q(X_t\mid X_0,X_1)$ (Prop. 3.3);
# 2. implement one DDPM step $p(X_s\mid X_0,X_t)$ for $s<t$ (eq. 4);
# 3. run the recursion from $X_1$ and check that its empirical marginals are the ones of part 1.
#
# Write your code where it says `YOUR CODE HERE` (delete the `raise NotImplementedError()`), then
# *Run All*. The cells that start with `# graded` check your work; do not edit them. Work in
# float64: the checks compare with the library to $10^{-10}$.

# %% tags=["parameters"]
SEED = 0          # seed of the simulated paths
N_PATHS = 4000    # paths simulated in part 3
NFE = 50          # steps of the recursion in part 3

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import torch

from pi2sb_lab.bridge import posterior, randn_like, step_posterior
from pi2sb_lab.labs.check import close, finite, implemented
from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, time_grid

torch.set_default_dtype(torch.float64)
schedule = SymmetricSchedule(0.1, 0.3)   # I2SB's released schedule
X0 = torch.tensor([-1.0, 0.5])           # the clean point
X1 = torch.tensor([1.5, -0.5])           # its degraded partner

# %% [markdown]
# ## Part 1 · The marginal of the bridge (Prop. 3.3)
#
# Without drift, $X_t\mid X_0 \sim \mathcal N(X_0, \sigma_t^2 I)$ and $X_1\mid X_t \sim \mathcal N(X_t,
# \bar\sigma_t^2 I)$. By Bayes, $q(X_t\mid X_0, X_1)\propto q(X_t\mid X_0)\,q(X_1\mid X_t)$: a product of
# two Gaussians in $X_t$. Complete the square to find
# $q(X_t\mid X_0,X_1)=\mathcal N(\mu_{x_0}X_0+\mu_{x_1}X_1,\ \Sigma_t I)$, then implement the three
# coefficients from $\sigma_t^2$ and $\bar\sigma_t^2$ (tensors of any shape, elementwise).

# %% nbgrader={"grade": false, "grade_id": "bridge_coefficients", "locked": false, "schema_version": 3, "solution": true}
def bridge_coefficients(sigma2, sigma_bar2):
    """(mu_x0, mu_x1, var) of q(X_t | X0, X1) from σ²_t and σ̄²_t (I2SB Prop. 3.3)."""
    ### BEGIN SOLUTION
    total = sigma2 + sigma_bar2
    mu_x0 = sigma_bar2 / total
    mu_x1 = sigma2 / total
    var = sigma2 * sigma_bar2 / total
    ### END SOLUTION
    return mu_x0, mu_x1, var


# %% nbgrader={"grade": true, "grade_id": "coefficients_at_the_ends", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: the bridge starts on X0 at t = 0 and ends on X1 at t = 1, with no spread at either end
t = torch.tensor([0.0, 1.0])
mu_x0, mu_x1, var = implemented(bridge_coefficients, schedule.sigma2(t), schedule.sigma_bar2(t))
close("mu_x0 at t = 0, 1", mu_x0, torch.tensor([1.0, 0.0]), hint="At t = 0 the bridge sits on X0.")
close("mu_x1 at t = 0, 1", mu_x1, torch.tensor([0.0, 1.0]), hint="At t = 1 the bridge sits on X1.")
close("var at t = 0, 1", var, torch.tensor([0.0, 0.0]), hint="Both ends are Dirac masses.")

# %% nbgrader={"grade": true, "grade_id": "coefficients_match_prop_3_3", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: the coefficients agree with Prop. 3.3 on a grid of times
t = torch.linspace(0.01, 0.99, 41)
mine = implemented(bridge_coefficients, schedule.sigma2(t), schedule.sigma_bar2(t))
ref = posterior(schedule, t)
close("mu_x0", mine[0], ref.mu_x0, swapped_with=("mu_x1", ref.mu_x1), hint="Re-derive the mean (Prop. 3.3).")
close("mu_x1", mine[1], ref.mu_x1, swapped_with=("mu_x0", ref.mu_x0), hint="Re-derive the mean (Prop. 3.3).")
close("var", mine[2], ref.var, hint="The precisions 1/σ² and 1/σ̄² add up.")
### BEGIN HIDDEN TESTS
for other in (ConstantSchedule(0.7), SymmetricSchedule(0.1, 0.3).scaled(1e-3)):
    mine = bridge_coefficients(other.sigma2(t), other.sigma_bar2(t))
    ref = posterior(other, t)
    for name, a, b in zip(("mu_x0", "mu_x1", "var"), mine, (ref.mu_x0, ref.mu_x1, ref.var)):
        close(f"{name} for {other}", a, b, hint="Your formula must hold for any β(t).")
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · One DDPM step of the bridge (eq. 4)
#
# For $s<t$, let $\alpha^2=\int_s^t\beta=\sigma_t^2-\sigma_s^2$. Given $X_0$ and $X_t$, the law of
# $X_s$ is again a Gaussian bridge — now between $X_0$ (at time 0) and $X_t$ (at time $t$), with
# "variances" $\sigma_s^2$ on the left and $\alpha^2$ on the right. Use part 1's reasoning to write
# its mean and standard deviation, and implement them. `t` and `s` are 0-d tensors; `x0`, `x_t` are
# batches `(B, D)`. Return `(mean, std)` with `mean` shaped like `x_t` (`std` may be 0-d).

# %% nbgrader={"grade": false, "grade_id": "step_mean_std", "locked": false, "schema_version": 3, "solution": true}
def step_mean_std(schedule, x0, x_t, t, s):
    """Mean and standard deviation of p(X_s | X0, X_t) for s < t (I2SB eq. 4)."""
    ### BEGIN SOLUTION
    s2_t, s2_s = schedule.sigma2(t), schedule.sigma2(s)
    alpha2 = s2_t - s2_s
    mean = alpha2 / s2_t * x0 + s2_s / s2_t * x_t
    std = (s2_s * alpha2 / s2_t).sqrt()
    ### END SOLUTION
    return mean, std


# %% nbgrader={"grade": true, "grade_id": "step_matches_eq_4", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: mean and std of one step agree with the library's step_posterior
gen = torch.Generator().manual_seed(1)
x0, x_t = torch.randn(5, 2, generator=gen), torch.randn(5, 2, generator=gen)
for t, s in [(0.9, 0.6), (0.5, 0.45), (0.3, 0.05)]:
    t, s = torch.tensor(t), torch.tensor(s)
    mean, std = implemented(step_mean_std, schedule, x0, x_t, t, s)
    ref = step_posterior(schedule, x0, x_t, t, s)
    close(f"mean at t={t:g}, s={s:g}", mean, ref.mean, hint="Weights α²/σ²_t on X0 and σ²_s/σ²_t on X_t.")
    close(f"std at t={t:g}, s={s:g}", torch.as_tensor(std) * torch.ones_like(x_t), ref.std * torch.ones_like(x_t),
          hint="The variance is σ²_s α²/σ²_t; the std is its square root.")
### BEGIN HIDDEN TESTS
other = ConstantSchedule(0.4)
t, s = torch.tensor(0.7), torch.tensor(0.2)
mean, std = step_mean_std(other, x0, x_t, t, s)
ref = step_posterior(other, x0, x_t, t, s)
close("mean (constant β)", mean, ref.mean)
close("std (constant β)", torch.as_tensor(std) * torch.ones_like(x_t), ref.std * torch.ones_like(x_t))
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "step_lands_on_x0", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: the last step (s = 0) lands exactly on X0, without noise
mean, std = implemented(step_mean_std, schedule, x0, x_t, torch.tensor(0.2), torch.tensor(0.0))
close("mean of the step to s = 0", mean, x0, tol=1e-12, hint="At s = 0, σ²_s = 0.")
close("std of the step to s = 0", torch.as_tensor(std) * torch.ones_like(x0), torch.zeros_like(x0), tol=1e-12)

# %% [markdown]
# ## Part 3 · The recursion keeps the marginals (second half of Prop. 3.3)
#
# Start `N_PATHS` copies at $X_1$ and walk the uniform grid from $t=1$ to $t=0$, each step drawing
# $X_s = \text{mean} + \text{std}\cdot\varepsilon$ with your `step_mean_std` and the *true* $X_0$
# (use `randn_like(x, generator)` for $\varepsilon$). Prop. 3.3 says the states at each $t$ are then
# distributed as $q(X_t\mid X_0,X_1)$.

# %% nbgrader={"grade": false, "grade_id": "simulate_bridge", "locked": false, "schema_version": 3, "solution": true}
def simulate_bridge(schedule, x0, x1, n_paths, nfe, generator):
    """Paths of the recursion from X1 at t = 1 to t = 0: returns (times, path).

    times: (nfe + 1,) from 1 down to 0 (the uniform grid, reversed); path: (nfe + 1, n_paths, D).
    """
    times = time_grid(nfe, "uniform").t.flip(0)
    ### BEGIN SOLUTION
    x = x1.expand(n_paths, -1).clone()
    path = [x]
    for t, s in zip(times[:-1], times[1:]):
        mean, std = step_mean_std(schedule, x0.expand_as(x), x, t, s)
        x = mean + std * randn_like(x, generator)
        path.append(x)
    ### END SOLUTION
    return times, torch.stack(path)


# %% nbgrader={"grade": true, "grade_id": "marginals_match", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: at every interior grid time the empirical mean and variance agree with q(X_t | X0, X1)
# within 5 standard errors, and the last state is X0
times, path = implemented(simulate_bridge, schedule, X0, X1, N_PATHS, NFE, torch.Generator().manual_seed(SEED))
finite("path", path)
assert path.shape == (NFE + 1, N_PATHS, 2), f"path must have shape {(NFE + 1, N_PATHS, 2)}; got {tuple(path.shape)}"
close("the first state", path[0], X1.expand(N_PATHS, 2), hint="The recursion starts at X1.")
close("the last state", path[-1], X0.expand(N_PATHS, 2), tol=1e-12, hint="The last step lands on X0.")
worst = 0.0
for k in range(1, NFE):
    c = posterior(schedule, times[k])
    mean, var = c.mu_x0 * X0 + c.mu_x1 * X1, c.var
    z_mean = ((path[k].mean(0) - mean).abs() / (var / N_PATHS).sqrt()).max().item()
    z_var = ((path[k].var(0) - var).abs() / (var * (2 / (N_PATHS - 1)) ** 0.5)).max().item()
    assert z_mean < 5, f"at t={times[k]:.3f} the empirical mean is {z_mean:.1f} standard errors from Prop. 3.3's"
    assert z_var < 5, f"at t={times[k]:.3f} the empirical variance is {z_var:.1f} standard errors from Prop. 3.3's"
    worst = max(worst, z_mean, z_var)
print(f"largest |z| over {NFE - 1} interior times: {worst:.2f}")
