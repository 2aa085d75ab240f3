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
# # 04 · Pseudo-hashing on a blind 2D problem
#
# The clean distribution is four Gaussian clusters on a circle; every clean point is degraded by a
# random rotation, scaling, shift and noise, drawn afresh each time it is used (`BlindDegradation2D`,
# the 2D stand-in for P-I2SB eq. 19). A fixed set of clean training points therefore meets many
# partners during training — the multi-partner setting of Cor. 4.2 (notebook 02).
#
# The four strategies of P-I2SB eq. 11, each trained as a bridge between $(\hat x,\hat y)$ (Alg. 1)
# and decoded by eq. 18 after sampling (Alg. 2):
#
# | strategy | $\hat x$ | $\hat y$ | decode |
# |---|---|---|---|
# | Origin (vanilla I2SB) | $x$ | $y$ | $\hat x$ |
# | Cat | $x\oplus y$ | $y\oplus y$ | first half |
# | Res | $y-x$ (eq. 13's sign) | $y$ | $y-\hat x$ |
# | Noise | $x+\lambda\varepsilon$ | $y$ | exact denoiser at $\lambda$ |
#
# All share one fixed configuration (`BridgeConfig`: ε-parameterization as in Alg. 1, MLP 64×2, Adam,
# the same steps and data stream per seed), with and without the OT-ODE (I2SB Prop. 3.4, in training
# and sampling). Metrics on held-out pairs: mean distance of the restored point to its true clean
# partner, cluster-assignment accuracy, and sliced $W_2$ between the restored and the clean cloud.
# `toy/twod.py` runs this same experiment headless.

# %% tags=["parameters"]
SEEDS = 3                # seeds 0 … SEEDS−1; every strategy shares the data of a seed
STEPS = 600              # training steps per bridge (the same for every strategy)
STRATEGIES = ["origin", "cat", "res", "noise"]  # any of origin, cat, res, noise
OT_ODE = [False, True]   # train and sample with / without the OT-ODE
DEGRADATION = "default"  # "default" or "hard" (twice the rotation, shift and noise)
CONDITION_ON_Y = False   # also feed the raw y to the network (I2SB's optional cond)
N_TRAIN = 1000           # clean training points
N_TEST = 1000            # held-out test pairs
WORKERS = 1              # processes for the runs (one thread each)
DEVICE = "cpu"           # "cpu", "cuda" or "auto" (2D work stays on the CPU)
INTERACTIVE = True       # widgets (ipywidgets); papermill runs set False
OUTPUT_DIR = "../runs/notebook04"  # figure, table and JSON go here

# %%
import json

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from pi2sb_lab.notebook import check_param, output_dir, resolve_device
from pi2sb_lab.experiments.twod_ablation import ablation_figure, as_json, check_strategies, markdown_table, run_ablation, \
    summarize
from pi2sb_lab.experiments.twod import DEGRADATIONS, BridgeConfig
from pi2sb_lab.viz import plot_restored_2d, savefig

check_param("SEEDS", SEEDS, int, min=1)
check_param("STEPS", STEPS, int, min=1)
check_param("STRATEGIES", STRATEGIES, list)
STRATEGIES = check_strategies(STRATEGIES)  # ValueError listing the valid names
check_param("OT_ODE", OT_ODE, list)
for setting in OT_ODE:
    check_param("OT_ODE[i]", setting, bool)
check_param("DEGRADATION", DEGRADATION, str, choices=DEGRADATIONS)
check_param("CONDITION_ON_Y", CONDITION_ON_Y, bool)
check_param("N_TRAIN", N_TRAIN, int, min=1)
check_param("N_TEST", N_TEST, int, min=2)
check_param("WORKERS", WORKERS, int, min=1)
check_param("INTERACTIVE", INTERACTIVE, bool)
device = resolve_device(DEVICE)  # checked for a uniform interface; these 2D toys run on the CPU
out = output_dir(OUTPUT_DIR)
config = BridgeConfig(total_steps=STEPS, condition_on_y=CONDITION_ON_Y)
print(config)

# %% [markdown]
# ## Train and restore, every strategy × OT-ODE setting × seed
# Within a seed all strategies see the same clean sets, test degradations and training pairs, so the
# table also reports each strategy's *paired* difference to Origin. When Origin and Noise both run,
# the control row `origin+denoise` passes Origin's output through Noise's decoder: what Noise gains
# from the denoiser alone.

# %%
ablation = run_ablation(STRATEGIES, OT_ODE, range(SEEDS), config=config, n_train=N_TRAIN, n_test=N_TEST,
                        degradation=DEGRADATION, workers=WORKERS)
rows = summarize(ablation)
table = markdown_table(rows)
(out / "results.md").write_text(table + "\n")
(out / "results.json").write_text(json.dumps(as_json(ablation, rows), indent=2))
display(Markdown(table))
trained = [r for r in ablation.records if r.strategy != "origin+denoise"]
print(f"{len(trained)} bridges trained and evaluated in {ablation.seconds:.0f} s")

# %%
savefig(ablation_figure(ablation), out / "restored.png")
plt.show()

# %% [markdown]
# ## Results that hold at every budget tried, checked
# 1. Learned restorers other than Res are much closer to the truth than the degraded input.
# 2. **Res without the raw $y$ is worse than Origin**, about as far off as not restoring at all. Its bridge
#    states are $X_t \approx y - a_t x$ ($a_t$ from Prop. 3.3), and with a near-identity degradation
#    $y\approx x$ the part that tells $x$ apart almost cancels: the Markov sampler, which sees only
#    $X_t$, loses what $y$ said about $x$. Feeding $y$ as a condition (`CONDITION_ON_Y = True`) repairs it.
# 3. **Noise-I2SB never beats plain I2SB followed by Noise's own denoiser** (`origin+denoise`): its
#    small gain in distance is the denoiser's shrinkage, and it costs distribution match (sliced $W_2$).

# %%
by_cell = {(r.strategy, r.ot_ode, r.seed): r.metrics for r in ablation.records}
for seed, base in ablation.baselines.items():
    for ot in OT_ODE:
        for name in STRATEGIES:
            if name == "res":
                continue
            m = by_cell[(name, ot, seed)]
            assert m.dist < 0.8 * base.dist, f"{name} ot={ot} seed {seed}: dist {m.dist:.3f} vs y {base.dist:.3f}"
        if {"origin", "res"} <= set(STRATEGIES) and not CONDITION_ON_Y:
            res, origin = by_cell[("res", ot, seed)], by_cell[("origin", ot, seed)]
            assert res.dist > origin.dist, f"Res beat Origin without y (ot={ot}, seed {seed}): {res} vs {origin}"
        if {"origin", "noise"} <= set(STRATEGIES):
            noise, control = by_cell[("noise", ot, seed)], by_cell[("origin+denoise", ot, seed)]
            assert control.dist <= noise.dist + 0.005, f"Noise beat Origin+denoiser (ot={ot}, seed {seed}): " \
                                                       f"{noise.dist:.4f} vs {control.dist:.4f}"
print("checked:", len(ablation.baselines), "seed(s) ×", len(OT_ODE), "setting(s)")

# %% [markdown]
# ## Does pseudo-hashing help here?
# On this blind 2D problem, with the defaults above over 3 seeds (`python toy/twod.py`): **no strategy
# improves on Origin in both distance and distribution.**
#
# - Without the OT-ODE, Cat is level with Origin (Δdist ≈ +0.01, sliced $W_2$ ≈ equal), Noise is
#   ≈ 0.006 closer and slightly worse in $W_2$ — exactly the denoiser's effect — and Res fails.
# - With the OT-ODE, Cat is 0.02 closer to the truth on every seed but its restored cloud is shrunk
#   towards the cluster centers (sliced $W_2$ ≈ 3× Origin's): a move towards the posterior mean, not
#   a better restoration. Noise again equals Origin + denoiser; Res fails.
# - The same holds with 2000 steps and on the "hard" degradation (where Cat is worse than Origin in
#   both settings). Origin itself is not broken: Cor. 4.2 is about the clean → degraded direction
#   (notebook 02), and the restoring direction it leaves intact is the one a restorer runs.
#
# The table above is recomputed with this notebook's parameters; the claims checked above are the ones
# that hold at every budget and seed tried.

# %% [markdown]
# ## Explore
# Pick a seed, a setting and a strategy to look at its restored points against the truth.

# %%
if INTERACTIVE:
    import ipywidgets as widgets

    def _show(seed, ot_ode, strategy):
        record = next(r for r in ablation.records if (r.seed, r.ot_ode, r.strategy) == (seed, ot_ode, strategy))
        problem = ablation.test_problem(seed)
        fig, ax = plt.subplots(figsize=(5, 5))
        plot_restored_2d(ax, problem.test_x, record.restored, links=200,
                         title=f"{strategy}, OT-ODE {'on' if ot_ode else 'off'}, seed {seed}: {record.metrics}")
        plt.show()

    widgets.interact(
        _show,
        seed=widgets.Dropdown(options=list(ablation.baselines), description="seed"),
        ot_ode=widgets.Dropdown(options=OT_ODE, description="OT-ODE"),
        strategy=widgets.Dropdown(options=sorted({r.strategy for r in ablation.records}), description="strategy"),
    )
