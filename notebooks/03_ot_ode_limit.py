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
# # 03 · The OT-ODE limit: scaling β to 0
#
# Multiply the rate by a constant, $\beta\to c\,\beta$. Both integrals scale, $\sigma_t^2\to c\,\sigma_t^2$
# and $\bar\sigma_t^2\to c\,\bar\sigma_t^2$, so in the Dirac-pair posterior (I2SB Prop. 3.3)
#
# $$q(X_t\mid X_0,X_1)=\mathcal N\!\Big(\tfrac{\bar\sigma_t^2}{\bar\sigma_t^2+\sigma_t^2}X_0+\tfrac{\sigma_t^2}{\bar\sigma_t^2+\sigma_t^2}X_1,\;\tfrac{\sigma_t^2\bar\sigma_t^2}{\bar\sigma_t^2+\sigma_t^2}\Big)$$
#
# the mean $\mu_t$ does not move and the variance is multiplied by $c$. As $c\to0$ the band collapses
# onto $\mu_t$ and the SDE becomes the **OT-ODE** $dX_t=\frac{\beta_t}{\sigma_t^2}(X_t-X_0)\,dt$
# (I2SB Prop. 3.4) whose paths are $\mu_t$ — always on the straight segment from $X_0$ to $X_1$, at a
# speed set by the schedule. With a **constant** β (I2SB Cor. 3.5) the speed is constant too:
# $\mu_t=(1-t)X_0+tX_1$ and $v_t=(X_t-X_0)/t$, the OT displacement.
#
# The sampler's DDPM step (I2SB eq. 4) has mean coefficients that are ratios of $\sigma^2$'s and a
# standard deviation $\propto\sqrt c$, so with the same noise draws a path at scale $c$ is
# $\mu_t+\sqrt c\,(\text{path at scale }1-\mu_t)$ — exactly. Then the part a network adds: does the
# *learned* sampler follow? We train the same 2D bridge at several scales and watch its error.

# %% tags=["parameters"]
SEED = 0                 # random seed for paths, data and training
SCALE = 0.1              # β multiplier c shown first (slider)
SCHEDULE = "symmetric"   # "symmetric" (I2SB Fig. 6) or "constant" (Cor. 3.5)
NFE = 50                 # sampler steps for the Dirac-pair paths
N_PATHS = 2000           # paths for the Dirac-pair figures
SCALES = [1.0, 0.1, 0.01, 0.001]  # β multipliers for the learned sweep, largest first
STEPS = 600              # training steps of each learned bridge
N_TEST = 500             # test pairs of the blind 2D problem
DEVICE = "cpu"           # "cpu", "cuda" or "auto" (2D work stays on the CPU)
INTERACTIVE = True       # sliders (ipywidgets); papermill runs set False
OUTPUT_DIR = "../runs/notebook03"  # figures go here

# %%
import matplotlib.pyplot as plt
import torch

from pi2sb_lab.bridge import ot_velocity, posterior
from pi2sb_lab.notebook import check_param, output_dir, resolve_device
from pi2sb_lab.parameterization import X0Param
from pi2sb_lab.sampler import sample
from pi2sb_lab.schedule import SCHEDULES, make_schedule
from pi2sb_lab.experiments.twod import BridgeConfig, evaluate, make_problem, sample_bridge, train_and_restore
from pi2sb_lab.viz import plot_2d_paths, plot_band, savefig

check_param("SEED", SEED, int)
check_param("SCALE", SCALE, float, min=1e-6, max=100.0)
check_param("SCHEDULE", SCHEDULE, str, choices=SCHEDULES)
check_param("NFE", NFE, int, min=2)
check_param("N_PATHS", N_PATHS, int, min=2)
check_param("SCALES", SCALES, list)
for c in SCALES:
    check_param("SCALES[i]", c, float, min=1e-6, max=100.0)
if len(SCALES) < 2 or sorted(SCALES, reverse=True) != SCALES:
    raise ValueError(f"parameter SCALES must list at least two β multipliers, largest first; got {SCALES}")
check_param("STEPS", STEPS, int, min=1)
check_param("N_TEST", N_TEST, int, min=2)
check_param("INTERACTIVE", INTERACTIVE, bool)
device = resolve_device(DEVICE)  # checked for a uniform interface; these 2D toys run on the CPU
out = output_dir(OUTPUT_DIR)

X0 = torch.tensor([-1.0, 0.5], dtype=torch.float64)   # the clean point
X1 = torch.tensor([1.5, -0.5], dtype=torch.float64)   # its degraded partner


# %% [markdown]
# ## A Dirac pair at scale $c$
# As in notebook 01 the network is an oracle that returns the true $X_0$, so what is drawn is the
# bridge itself. Left: paths in the plane; middle: the first coordinate against $t$ with the band
# $\mu_t\pm\sqrt{\Sigma_t}$; right: how far along the segment $\mu_t$ is at time $t$ (the schedule's
# speed; a diagonal for constant β).

# %%
def dirac_paths(scale, schedule=SCHEDULE, nfe=NFE, n_paths=N_PATHS, seed=SEED, ot_ode=False):
    """SDE (or OT-ODE) sampler paths from X1 with the true X0 as the oracle, at β scaled by ``scale``."""
    sched = make_schedule(schedule).scaled(scale)
    oracle = X0Param(lambda x_t, t, cond=None: X0.expand(n_paths, 2), sched)
    res = sample(oracle, X1.expand(n_paths, 2).clone(), sched, nfe=nfe, grid="uniform", ot_ode=ot_ode,
                 generator=torch.Generator().manual_seed(seed), trajectory_stride=1)
    return sched, res


def limit_figure(scale=SCALE, schedule=SCHEDULE):
    sched, res = dirac_paths(scale, schedule)
    c = posterior(sched, res.times)
    mean = c.mu_x0[:, None] * X0 + c.mu_x1[:, None] * X1
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    plot_2d_paths(axes[0], res.trajectory[:, :40], alpha=0.35)
    axes[0].plot(mean[:, 0], mean[:, 1], "k--", lw=1.5, label="μ_t (the OT-ODE path)")
    axes[0].legend(fontsize=7, loc="lower left")
    plot_band(axes[1], res.times, mean[:, 0], c.std, label="μ_t ± √Σ_t")
    for n in range(8):
        axes[1].plot(res.times, res.trajectory[:, n, 0], color="gray", lw=0.6)
    axes[1].set_ylim(-1.6, 2.1)
    axes[1].set_xlabel("t (0 clean, 1 degraded)")
    axes[1].legend(fontsize=7)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for name, color in (("symmetric", "C0"), ("constant", "C1")):
        axes[2].plot(t, posterior(make_schedule(name), t).mu_x1, color=color, label=f"{name} β")
    axes[2].set_xlabel("t"), axes[2].set_ylabel("fraction of the way to X1 (σ²/(σ²+σ̄²))")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{schedule} schedule, β × {scale:g}: band width ∝ √c")
    fig.tight_layout()
    return fig


savefig(limit_figure(), out / "dirac_pair_limit.png")
plt.show()

# %% [markdown]
# ## The limit, checked
# 1. Paths at scale $c$ equal $\mu_t+\sqrt c\,(\text{paths at }c=1-\mu_t)$ with the same draws.
# 2. Hence the largest deviation from $\mu_t$ falls like $\sqrt c$, and the excess length of a path over
#    the straight segment (sideways wiggles count squared) about like $c$: trajectories straighten onto
#    the posterior mean.
# 3. Constant β: $\mu_t=(1-t)X_0+tX_1$ and $v_t=(X_t-X_0)/t$ (Cor. 3.5), and the OT-ODE sampler walks
#    exactly that line.

# %%
def posterior_mean_path(sched, times):
    """μ_t at the given times, shaped (K, 1, 2) to broadcast over paths."""
    c = posterior(sched, times)
    return (c.mu_x0[:, None] * X0 + c.mu_x1[:, None] * X1)[:, None, :]


def deviation_and_excess_length(sched, res):
    """Mean over paths of max_t ‖X_t − μ_t‖ and of (path length / ‖X1 − X0‖ − 1)."""
    dev = (res.trajectory - posterior_mean_path(sched, res.times)).norm(dim=-1).max(dim=0).values.mean().item()
    length = (res.trajectory[1:] - res.trajectory[:-1]).norm(dim=-1).sum(dim=0)
    return dev, (length / (X1 - X0).norm() - 1).mean().item()


base_sched, base = dirac_paths(1.0)
mu_base = posterior_mean_path(base_sched, base.times)  # the same at every scale (Prop. 3.3)
print(f"{'c':>8} {'max |X_t − μ_t|':>16} {'excess length':>14} {'scaling error':>14}")
trend = []
for c in [1.0, 0.1, 0.01, 0.001]:
    sched, res = dirac_paths(c)
    scaling_error = (res.trajectory - (mu_base + c**0.5 * (base.trajectory - mu_base))).abs().max().item()
    dev, excess = deviation_and_excess_length(sched, res)
    trend.append((c, dev, excess))
    print(f"{c:8g} {dev:16.5f} {excess:14.5f} {scaling_error:14.2e}")
    assert scaling_error < 1e-10, f"paths at c={c} are not μ_t + √c (paths at 1 − μ_t): {scaling_error:.2e}"
for (c_a, dev_a, ex_a), (c_b, dev_b, ex_b) in zip(trend, trend[1:]):
    assert abs(dev_b / dev_a - (c_b / c_a) ** 0.5) < 1e-8, "the deviation scales exactly like √c"
    assert ex_b < ex_a, "paths get straighter as c shrinks"

const = make_schedule("constant")
t = torch.linspace(0.01, 1, 100, dtype=torch.float64)
c = posterior(const, t)
line = (1 - t)[:, None] * X0 + t[:, None] * X1
err_mean = (c.mu_x0[:, None] * X0 + c.mu_x1[:, None] * X1 - line).abs().max().item()
err_velocity = (ot_velocity(const, line, X0.expand_as(line), t) - (line - X0) / t[:, None]).abs().max().item()
_, ode = dirac_paths(1.0, "constant", n_paths=1, ot_ode=True)
err_ode = (ode.trajectory[:, 0] - ((1 - ode.times)[:, None] * X0 + ode.times[:, None] * X1)).abs().max().item()
print(f"Cor. 3.5: |μ_t − line| {err_mean:.1e}, |v_t − (X_t − X0)/t| {err_velocity:.1e}, OT-ODE sampler "
      f"off the line by {err_ode:.1e}")
errors = torch.tensor([err_mean, err_velocity, err_ode])
assert bool(torch.isfinite(errors).all()) and errors.max() < 1e-10, errors  # max() of a list would skip a NaN

# %% [markdown]
# ## The learned sampler as $c\to0$
# The blind 2D problem of notebook 04 (Origin, no hashing), one bridge trained per scale with
# everything else fixed, sampled both ways. Reported: distance of the restored point to its true clean
# partner, sliced $W_2$ to the clean distribution, and the gap between the SDE and OT-ODE outputs of
# the same network. The SDE's injected noise is $\propto\sqrt c$, so the gap should fall about
# $\sqrt{10}\approx3.2\times$ per decade and the two samplers merge.

# %%
def learned_sweep(scales=SCALES, steps=STEPS, n_test=N_TEST, seed=SEED):
    problem = make_problem(seed, n_test=n_test)
    rows = []
    for c in scales:
        result = train_and_restore(problem, "origin", seed=seed, trajectory_stride=2,
                                   config=BridgeConfig(total_steps=steps, beta_scale=c))
        ode = sample_bridge(result.fitted, problem.test_y, ot_ode=True, seed=seed, trajectory_stride=2)
        m_ode = evaluate(ode.x0, problem, seed=seed)
        rows.append(dict(c=c, sde=result.metrics, ode=m_ode, gap=(result.restored - ode.x0).norm(dim=1).mean().item(),
                         paths=result.sampled.trajectory, ode_paths=ode.trajectory))
    return problem, rows


problem, sweep = learned_sweep()
print(f"{'c':>8} {'dist SDE':>9} {'dist ODE':>9} {'SW₂ SDE':>8} {'SW₂ ODE':>8} {'SDE–ODE gap':>12}")
for r in sweep:
    print(f"{r['c']:8g} {r['sde'].dist:9.4f} {r['ode'].dist:9.4f} {r['sde'].sw2:8.4f} {r['ode'].sw2:8.4f} "
          f"{r['gap']:12.4f}")
gaps = [r["gap"] for r in sweep]
assert all(a > b for a, b in zip(gaps, gaps[1:])), f"SDE–ODE gap should shrink with c: {gaps}"
decades = torch.log10(torch.tensor(SCALES[0] / SCALES[-1])).item()
assert gaps[-1] < gaps[0] * 10 ** (-0.3 * decades), (f"gap fell only {gaps[0] / gaps[-1]:.1f}× over "
                                                     f"{decades:.0f} decade(s) of c (√c predicts "
                                                     f"{10 ** (decades / 2):.1f}×)")


# %%
def sweep_figure(sweep, problem):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    cs = [r["c"] for r in sweep]
    axes[0].loglog(cs, [r["gap"] for r in sweep], "o-", label="mean ‖SDE − ODE‖")
    axes[0].loglog(cs, [sweep[0]["gap"] * (c / cs[0]) ** 0.5 for c in cs], "k--", lw=1, label="∝ √c")
    axes[0].semilogx(cs, [r["sde"].dist for r in sweep], "s-", label="dist SDE")
    axes[0].semilogx(cs, [r["ode"].dist for r in sweep], "^-", label="dist ODE")
    axes[0].set_xlabel("β multiplier c"), axes[0].legend(fontsize=7), axes[0].invert_xaxis()
    for ax, r in zip(axes[1:], (sweep[0], sweep[-1])):
        plot_2d_paths(ax, r["paths"][:, :60], alpha=0.4)
        ax.scatter(problem.test_x[:60, 0], problem.test_x[:60, 1], s=8, c="C2", label="true clean")
        ax.set_title(f"learned SDE sampler paths, c = {r['c']:g}", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


savefig(sweep_figure(sweep, problem), out / "learned_limit.png")
plt.show()

# %% [markdown]
# ## Explore
# Slide $c$ over six decades and switch the schedule: the band's width follows $\sqrt c$, the mean
# path never moves, and with constant β the right panel is the diagonal.

# %%
if INTERACTIVE:
    import ipywidgets as widgets

    from pi2sb_lab.viz import log_slider

    def _show(scale, schedule):
        limit_figure(scale, schedule)
        plt.show()

    widgets.interact(
        _show,
        scale=log_slider(SCALE, 1e-4, 10 ** 1.5, step=0.25, description="β scale c"),
        schedule=widgets.Dropdown(options=list(SCHEDULES), value=SCHEDULE, description="schedule"),
    )
