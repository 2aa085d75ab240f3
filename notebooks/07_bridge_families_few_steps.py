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
# # 07 · Bridge families and few-step samplers
#
# I2SB is one of several diffusion bridges. Pinned at a pair $(X_0, X_1)$, every one of them has
# Gaussian marginals of one form,
#
# $$X_t = a_t X_0 + b_t X_1 + c_t\,\varepsilon ,$$
#
# with its own coefficients: I2SB ($a_t=\bar\sigma_t^2/(\sigma_t^2+\bar\sigma_t^2)$, $b_t = 1-a_t$,
# $c_t^2=\sigma_t^2\bar\sigma_t^2/(\sigma_t^2+\bar\sigma_t^2)$), DDBM's VP and VE bridges, GOUB
# (a mean-reverting Ornstein–Uhlenbeck bridge). For any of them, a step from $t$ to $s<t$
#
# $$x_s = a_s\hat X_0 + b_s X_1 + \sqrt{c_s^2-\rho^2}\,\hat\varepsilon_t + \rho z,\qquad
#   \hat\varepsilon_t = \frac{x_t - a_t\hat X_0 - b_t X_1}{c_t}$$
#
# keeps every marginal when $\hat X_0$ is right, for any $\rho\in[0, c_s]$. The Markovian value of
# $\rho$ is I2SB's posterior step (Alg. 2); $\rho = 0$ is the deterministic, *implicit* step of
# DBIM / I3SB. The sampler's dial is $\eta=\rho/\rho_{\text{Markov}}$. At $t = 1$ the state is
# $X_1$ itself ($c_1 = 0$): there only $\rho = c_s$ creates the spread, so the *implicit* sampler
# takes one Markovian first step ("booting noise", DBIM); without it ($\eta=0$ throughout) the walk
# is fully deterministic — the *ODE* sampler.
#
# Below: the four families' coefficients; a Dirac pair's paths for the chosen family and $\eta$
# against the exact band; then a 2D Gaussian problem whose exact denoiser is known, where the
# few-step samples can be compared with the exact target at every NFE.

# %% tags=["parameters"]
SEED = 0                 # random seed for the sampler's noise
FAMILY = "i2sb"          # "i2sb", "ddbm-vp", "ddbm-ve" or "goub"
ETA = 0.0                # noise dial η in [0, 1]: 0 implicit (with booting noise), 1 Markovian (I2SB Alg. 2)
NFE = 5                  # sampler steps for the paths and the few-step samples
N_PATHS = 2000           # sampled paths / points
NFES = [1, 2, 5, 10, 20, 100]  # NFE sweep of the exact few-step table
DEVICE = "cpu"           # "cpu", "cuda" or "auto" (2D work stays on the CPU)
INTERACTIVE = True       # dropdown and sliders (ipywidgets); papermill runs set False
OUTPUT_DIR = "../runs/notebook07"  # figures go here

# %%
import matplotlib.pyplot as plt
import torch

from pi2sb_lab.bridge import posterior
from pi2sb_lab.families import FAMILIES, make_family
from pi2sb_lab.notebook import check_param, output_dir, resolve_device
from pi2sb_lab.parameterization import X0Param
from pi2sb_lab.sampler import sample, step_table
from pi2sb_lab.schedule import time_grid
from pi2sb_lab.viz import plot_band, savefig

check_param("SEED", SEED, int)
check_param("FAMILY", FAMILY, str, choices=FAMILIES)
check_param("ETA", ETA, float, min=0.0, max=1.0)
check_param("NFE", NFE, int, min=1, max=1000)
check_param("N_PATHS", N_PATHS, int, min=200)
check_param("NFES", NFES, list)
for n in NFES:
    check_param("NFES[i]", n, int, min=1, max=1000)
check_param("INTERACTIVE", INTERACTIVE, bool)
device = resolve_device(DEVICE)  # checked for a uniform interface; the 2D work runs on the CPU
out = output_dir(OUTPUT_DIR)

X0 = torch.tensor([-1.0, 0.5], dtype=torch.float64)   # the clean point of the Dirac pair
X1 = torch.tensor([1.5, -0.5], dtype=torch.float64)   # its degraded partner
SAMPLERS = {"Markovian (η = 1)": dict(eta=1.0), "implicit (η = 0, booting noise)": dict(eta=0.0, boot_noise=True),
            "ODE (η = 0)": dict(eta=0.0)}


def family_of(name):
    # GOUB and DDBM at the defaults of families.py; a milder VE (σ_max = 2) keeps the 2D figures readable
    return make_family(name, sigma_max=2.0) if name == "ddbm-ve" else make_family(name)


# %% [markdown]
# ## The coefficients
# $a_t$ (weight of $X_0$), $b_t$ (of $X_1$) and $c_t$ (noise) on $[0,1]$. All start at $(1,0,0)$
# and end at $(0,1,0)$; the VP and GOUB bridges shrink the signal ($a_t+b_t<1$ for VP) on the way.

# %%
def coefficients_figure():
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for name in FAMILIES:
        c = posterior(family_of(name), t)
        for ax, v, label in zip(axes, (c.mu_x0, c.mu_x1, c.std), ("a_t", "b_t", "c_t")):
            ax.plot(t, v, label=name)
            ax.set_title(label), ax.set_xlabel("t (0 clean, 1 degraded)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


savefig(coefficients_figure(), out / "coefficients.png")
plt.show()

for name in FAMILIES:
    c = posterior(family_of(name), torch.tensor([0.0, 1.0], dtype=torch.float64))
    ends = torch.stack([c.mu_x0, c.mu_x1, c.var]).T
    assert torch.equal(ends, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)), (name, ends)


# %% [markdown]
# ## A Dirac pair: paths and the exact band
# The network is an oracle returning the true $X_0$, so what is drawn is the sampler itself. Left:
# paths in the plane; right: the first coordinate against $t$ with the exact band
# $a_tX_0+b_tX_1 \pm c_t$. With booting noise every $\eta$ stays in the band's law; the ODE sampler
# ($\eta = 0$ throughout) walks the mean exactly — I2SB's OT-ODE path.

# %%
def dirac_paths(family, eta, nfe, boot_noise=True, n_paths=N_PATHS, seed=SEED):
    oracle = X0Param(lambda x_t, t, cond=None: X0.expand(n_paths, 2), family)
    return sample(oracle, X1.expand(n_paths, 2).clone(), family, nfe=nfe, grid="uniform", eta=eta,
                  boot_noise=boot_noise, generator=torch.Generator().manual_seed(seed), trajectory_stride=1)


def paths_figure(name=FAMILY, eta=ETA, nfe=NFE):
    family = family_of(name)
    res = dirac_paths(family, eta, max(nfe, 2))
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    c = posterior(family, t)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for n in range(40):
        axes[0].plot(res.trajectory[:, n, 0], res.trajectory[:, n, 1], "-o", ms=2, lw=0.7, alpha=0.5, color="C0")
    mean = c.mu_x0[:, None] * X0 + c.mu_x1[:, None] * X1
    axes[0].plot(mean[:, 0], mean[:, 1], "k--", lw=1.5, label="a_t X0 + b_t X1")
    axes[0].legend(fontsize=7)
    plot_band(axes[1], t, mean[:, 0], c.std, label="exact mean ± c_t")
    for n in range(12):
        axes[1].plot(res.times, res.trajectory[:, n, 0], "-o", ms=2, color="gray", lw=0.6)
    axes[1].set_xlabel("t"), axes[1].legend(fontsize=7)
    fig.suptitle(f"{name}, η = {eta:g}, NFE {max(nfe, 2)} (oracle X̂0 = X0, booting noise)")
    fig.tight_layout()
    return fig


savefig(paths_figure(), out / "dirac_paths.png")
plt.show()


# %% [markdown]
# ### Checked, for every family and every η
# 1. The law of every state is exactly $\mathcal N(a_tX_0+b_tX_1, c_t^2)$: the step is affine, so its
#    moments propagate exactly (float64, to 1e-10); and the sampled paths, standardized by the band,
#    have mean 0 and variance 1 (5 standard errors).
# 2. The last step lands on $X_0$; without booting noise $\eta = 0$ walks the mean exactly.

# %%
def propagated_errors(family, eta, nfe, boot_noise=True):
    """Largest error of the exactly propagated mean coefficients and variance against q(X_s | X0, X1)."""
    grid = time_grid(nfe, "uniform")
    tab = step_table(family, grid, eta, boot_noise=boot_noise)
    m0, m1, v, worst = 0.0, 1.0, 0.0, 0.0
    for n, (_, s) in enumerate(grid.steps()):
        A, B, K, rho = (float(x[n]) for x in (tab.x0, tab.x1, tab.xt, tab.rho))
        m0, m1, v = A + K * m0, B + K * m1, K * K * v + rho * rho
        c = posterior(family, s)
        worst = max(worst, abs(m0 - c.mu_x0.item()), abs(m1 - c.mu_x1.item()), abs(v - c.var.item()))
    return worst


for name in FAMILIES:
    for eta in sorted({0.0, 0.5, 1.0, ETA}):
        err = propagated_errors(family_of(name), eta, max(NFE, 2))
        assert err < 1e-10, f"{name}, η = {eta}: moments off by {err:.2e}"
family = family_of(FAMILY)
res = dirac_paths(family, ETA, max(NFE, 2))
assert (res.x0 - X0).abs().max() < 1e-10, "the last step lands on X0"
c = posterior(family, res.times[1:-1])
mu = c.mu_x0[:, None, None] * X0 + c.mu_x1[:, None, None] * X1
z = ((res.trajectory[1:-1] - mu) / c.std[:, None, None]).flatten(1)
n = z.shape[1]
assert bool((z.mean(1).abs() < 5 / n**0.5).all()), f"standardized means {z.mean(1).tolist()}"
assert bool(((z.var(1) - 1).abs() < 5 * (2 / (n - 1)) ** 0.5).all()), f"standardized variances {z.var(1).tolist()}"
ode = dirac_paths(family, 0.0, max(NFE, 2), boot_noise=False)
assert (ode.trajectory[1:-1] - mu).abs().max() < 1e-10, "η = 0 without booting noise walks the mean"
print(f"{FAMILY}, η = {ETA}: moments exact for every family and η; standardized states mean "
      f"{z.mean().item():+.4f}, variance {z.var().item():.4f}")


# %% [markdown]
# ## Few steps on a problem with a known answer
# Now $X_0$ is not known: clean points are drawn from $\mathcal N(m_0, v_0 I)$ and paired with the
# one degraded point $X_1$, so the restoration target is $\mathcal N(m_0, v_0 I)$ itself. Its exact
# denoiser is $\mathbb E[X_0\mid x_t] = m_0 + \frac{a_t v_0}{a_t^2 v_0 + c_t^2}(x_t - a_t m_0 - b_t X_1)$,
# the network every training run aims at. With it the whole sampler is affine in its noises, so the
# law of its output is Gaussian and known exactly at every NFE: how close does each sampler get in
# few steps? (A learned network adds its own error: see `toy/baselines.py fewstep` on MNIST.)
#
# What the table shows: every sampler gets the *mean* right at every NFE; the spread is where they
# differ. The ODE sampler, deterministic from the single point $X_1$, returns one point: zero spread
# at every NFE. Booting noise makes the implicit sampler a sampler again, and for the DDBM and GOUB
# bridges it then reaches the target spread in fewer steps than the Markovian one; for I2SB the two
# are close.

# %%
M0, V0 = torch.tensor([-0.5, 1.0], dtype=torch.float64), 0.25


def exact_denoiser(family):
    def net(x_t, t, cond=None):
        c = posterior(family, t)
        prec = c.mu_x0**2 * V0 + c.var
        gain = torch.where(prec > 0, c.mu_x0 * V0 / torch.where(prec > 0, prec, torch.ones_like(prec)), 0 * prec)
        mean = c.mu_x0[:, None] * M0 + c.mu_x1[:, None] * X1
        return M0 + gain[:, None] * (x_t - mean)
    return X0Param(net, family)


def output_law(family, nfe, eta, boot_noise=False):
    """Mean and per-coordinate variance of the sampler's output with the exact denoiser (exact propagation)."""
    grid = time_grid(nfe, "quadratic")
    tab = step_table(family, grid, eta, boot_noise=boot_noise)
    mean, var = X1.clone(), 0.0
    for n, (t, _) in enumerate(grid.steps()):
        c = posterior(family, t)
        prec = (c.mu_x0**2 * V0 + c.var).item()
        gain = c.mu_x0.item() * V0 / prec if prec > 0 else 0.0
        A, B, K, rho = (float(x[n]) for x in (tab.x0, tab.x1, tab.xt, tab.rho))
        d_mean = M0 + gain * (mean - c.mu_x0 * M0 - c.mu_x1 * X1)
        mean = A * d_mean + B * X1 + K * mean
        var = (A * gain + K) ** 2 * var + rho * rho
    return mean, var


def law_table(name):
    family = family_of(name)
    rows = {label: [output_law(family, n, **kw) for n in NFES] for label, kw in SAMPLERS.items()}
    return rows


tables = {name: law_table(name) for name in FAMILIES}
print("output variance / target variance v0 (1 = exact), quadratic grid")
print(f"{'family · sampler':40s}" + "".join(f"{'NFE ' + str(n):>9}" for n in NFES))
for name, rows in tables.items():
    for label, laws in rows.items():
        print(f"{name + ' · ' + label:40s}" + "".join(f"{v / V0:9.3f}" for _, v in laws))
        for m, _ in laws:  # the mean is right at every NFE and η (the step keeps it, the denoiser is unbiased)
            assert (m - M0).abs().max() < 1e-10, f"{name} {label}: output mean {m.tolist()}"
    # from the one point X1, ρ = 0 at every step is a deterministic map: one answer, no spread at all
    assert all(v == 0.0 for _, v in rows["ODE (η = 0)"]), f"{name}: the ODE sampler's output spread"


# %%
def few_step_figure(name=FAMILY, eta=ETA, nfe=NFE):
    family = family_of(name)
    x1 = X1.expand(N_PATHS, 2).clone()
    res = sample(exact_denoiser(family), x1, family, nfe=nfe, eta=eta, boot_noise=True,
                 generator=torch.Generator().manual_seed(SEED))
    mean, var = output_law(family, nfe, eta, boot_noise=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    target = M0 + V0**0.5 * torch.randn(N_PATHS, 2, generator=torch.Generator().manual_seed(SEED + 1),
                                        dtype=torch.float64)
    axes[0].scatter(target[:, 0], target[:, 1], s=3, alpha=0.3, color="C2", label="target N(m0, v0 I)")
    axes[0].scatter(res.x0[:, 0], res.x0[:, 1], s=3, alpha=0.3, color="C0", label=f"sampler, NFE {nfe}")
    axes[0].scatter([X1[0]], [X1[1]], marker="x", color="k", label="X1")
    axes[0].set_aspect("equal"), axes[0].legend(fontsize=7, markerscale=3)
    axes[0].set_title(f"{name}, η = {eta:g} (booting noise): exact output variance {var / V0:.3f}·v0", fontsize=9)
    for label, laws in tables[name].items():
        axes[1].plot(NFES, [v / V0 for _, v in laws], "o-", label=label)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_xscale("log"), axes[1].set_xlabel("NFE"), axes[1].set_ylabel("output variance / v0")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig, res, mean, var


fig, res, law_mean, law_var = few_step_figure()
savefig(fig, out / "few_steps.png")
plt.show()
# the samples follow the exactly propagated law (5 standard errors)
n = res.x0.shape[0]
assert ((res.x0.mean(0) - law_mean).abs() < 5 * (law_var / n) ** 0.5 + 1e-12).all(), (res.x0.mean(0), law_mean)
assert ((res.x0.var(0) - law_var).abs() < 5 * law_var * (2 / (n - 1)) ** 0.5 + 1e-12).all(), (res.x0.var(0), law_var)

# %% [markdown]
# ## Explore
# Pick a family, slide η and the NFE: the paths stay inside the exact band for every η (once booted),
# and the right panel shows how far each sampler's output law is from the target in few steps.

# %%
if INTERACTIVE:
    import ipywidgets as widgets

    from pi2sb_lab.viz import int_slider, linear_slider

    def _show(name, eta, nfe):
        paths_figure(name, eta, nfe)
        few_step_figure(name, eta, nfe)
        plt.show()

    widgets.interact(
        _show,
        name=widgets.Dropdown(options=list(FAMILIES), value=FAMILY, description="family"),
        eta=linear_slider(ETA, 0.0, 1.0, step=0.05, description="η"),
        nfe=int_slider(NFE, 1, 50, description="NFE"),
    )
