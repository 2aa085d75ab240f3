"""Few-step sampling of the bridge families on MNIST: Markovian vs implicit vs ODE steps across NFE.

DBIM (implicit, non-Markovian sampling of DDBM bridges) and I3SB (the same for I2SB) report
far fewer steps at equal quality, with no retraining. Every *cell* here trains one model on
one operator with one seed and restores the same held-out digits with each sampler at every NFE:

===========  ============================================================  ====================================
model        bridge                                                         network output
===========  ============================================================  ====================================
``i2sb``     I2SB's symmetric schedule (the project's default)              ε (I2SB eq. 12)
``ddbm-vp``  DDBM's VP bridge, β(t) = 0.1 + 2t                              Karras preconditioning (I2SB App. C.3
``ddbm-ve``  DDBM's VE bridge, σ(t) = 80 t                                  re-derived for a_t, b_t, c_t, as DDBM
``goub``     GOUB, θ = 3, λ = 0.3                                           preconditions its bridges)
``palette``  the non-bridge reference: N(0, I) → x with y concatenated      v-prediction
===========  ============================================================  ====================================

Samplers (``sampler.sample``): ``markov`` — η = 1, the posterior step (I2SB Alg. 2);
``implicit`` — η = 0 after one Markovian first step (DBIM's booting noise); ``ode`` — η = 0 from
the first step, deterministic (with the true X0 it walks the bridge mean: I2SB's OT-ODE path).
Palette: DDIM (η = 0). Metrics as in the Fig. 8 study (``mnist_eval.evaluate_restored``). Every
sampler is evaluated at every NFE (NFE 100 is the reference). A finished cell's metrics are kept in its run folder
(``fewstep_cell.json``): a rerun into the same folder reloads them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..atomic import write_atomic
from ..conditioning import get_conditioning
from ..data.mnist import load_mnist
from ..diffusion import PaletteObjective, ddim, prior_noise
from ..families import make_family
from ..objective import BridgeObjective
from ..operators import get_operator
from ..parameterization import KarrasParam
from ..recipe import make_bridge
from ..train import training_loop
from .baselines import BaselineConfig, bridge_recipe, check_operators, operator_cells
from .cells import CpuClock, check_seeds, mean_std, run_cells
from .mnist_eval import ImageMetrics, evaluate_restored

__all__ = ["FAMILY_SETTINGS", "MODELS", "SAMPLERS", "FEWSTEP_NFES", "FEWSTEP_OPERATORS", "FewStepRecord",
           "run_fewstep_cell", "run_fewstep_study", "fewstep_json", "fewstep_figure", "fewstep_tables",
           "fewstep_verdict", "fewstep_report"]

FAMILY_SETTINGS = {"i2sb": {}, "ddbm-vp": dict(beta_min=0.1, beta_d=2.0), "ddbm-ve": dict(sigma_max=80.0),
                   "goub": dict(theta=3.0, lam=0.3)}
MODELS = (*FAMILY_SETTINGS, "palette")
SAMPLERS = {"markov": dict(eta=1.0), "implicit": dict(eta=0.0, boot_noise=True), "ode": dict(eta=0.0)}
FEWSTEP_NFES = (1, 2, 5, 10, 20, 100)
FEWSTEP_OPERATORS = ("sr4x-pool", "jpeg-10")
METRICS = ("psnr", "accuracy", "fd")
_LABEL = {"psnr": "PSNR (dB) ↑", "accuracy": "digit accuracy ↑", "fd": "FD (classifier features) ↓"}


def _family(model: str, config: BaselineConfig):
    if model == "i2sb":  # the symmetric schedule of config, as a family like the others
        return make_family("i2sb", schedule=make_bridge(beta_min=config.beta_min, beta_max=config.beta_max))
    return make_family(model, **FAMILY_SETTINGS[model])


def _train(model: str, operator: str, config: BaselineConfig, *, seed: int, device, run_dir, progress):
    op = get_operator(operator)
    images = load_mnist("train").images
    images = images if config.train_size is None else images[: config.train_size]
    recipe = bridge_recipe(config, None if model == "palette" else _family(model, config))
    pair_fn = recipe.degrade_pair_fn(lambda x, g: (x, op(x, generator=g).y, None))
    if model == "palette":  # the same U-Net with y concatenated (an lq-conditioned backbone), on the VP schedule
        bridge = config.vp_schedule()
        net = dataclasses.replace(recipe, conditioning=get_conditioning("lq")).backbone(seed)
        objective = PaletteObjective(bridge, prediction="v")
    else:
        bridge = recipe.bridge
        if model == "i2sb":
            net = recipe.network(seed)
        else:  # data statistics for the preconditioning from 512 training pairs (a fixed generator)
            x = images[:512]
            net = KarrasParam.from_data(recipe.backbone(seed), bridge, x,
                                        op(x, generator=torch.Generator().manual_seed(0)).y)
        objective = BridgeObjective(bridge)
    settings = config.train_settings(seed=seed, device=str(device), run_dir=run_dir, resume=run_dir is not None,
                                     log_every=max(1, config.total_steps // 10), progress=progress)
    result = training_loop(settings, model=net, objective=objective, dataset=images, pair_fn=pair_fn,
                           config={"model": model, "operator": operator, "fewstep": config.as_dict()})
    return result.ema.eval(), bridge, list(result.losses), recipe


@dataclasses.dataclass(frozen=True)
class FewStepRecord:
    """One model × operator × seed: ``metrics[sampler][nfe]``."""

    model: str
    operator: str
    seed: int
    metrics: dict[str, dict[int, ImageMetrics]]
    final_loss: float
    train_seconds: float
    eval_seconds: float
    cpu_seconds: float




def run_fewstep_cell(*, model: str, operator: str, seed: int, config: BaselineConfig, nfes: Sequence[int], test,
                     classifier, device="cpu", run_dir=None, progress=True) -> FewStepRecord:
    """Train (or load) one model, then restore ``test.y`` with every sampler at its NFEs (sampling seed = seed)."""
    saved = None if run_dir is None else Path(run_dir) / "fewstep_cell.json"
    if saved is not None and saved.exists():
        data = json.loads(saved.read_text())
        if data["nfes"] == list(nfes) and data["eval_size"] == len(test.y):
            metrics = {s: {int(n): ImageMetrics(**m) for n, m in per.items()} for s, per in data["metrics"].items()}
            return FewStepRecord(model, operator, seed, metrics, data["final_loss"], data["train_seconds"],
                                 data["eval_seconds"], data["cpu_seconds"])
    clock = CpuClock()
    net, bridge, losses, recipe = _train(model, operator, config, seed=seed, device=device, run_dir=run_dir,
                                 progress=progress)
    train_seconds = clock.wall
    metrics = {}
    samplers = {"ddim": {}} if model == "palette" else SAMPLERS
    for name, kw in samplers.items():
        metrics[name] = {}
        for nfe in nfes:
            if model == "palette":
                dev = next(net.parameters()).device
                gen = torch.Generator(device=dev).manual_seed(seed)
                y = test.y.to(dev)
                x = ddim(net, prior_noise(y.shape, generator=gen, device=dev), bridge, nfe=nfe, grid=config.grid,
                         cond=y, generator=gen, clip_x0=config.clip_x0).x0.clamp(-1, 1).cpu()
            else:
                x = recipe.restore(net, test.y, nfe=nfe, grid=config.grid, seed=seed, clamp=(-1.0, 1.0),
                                   **kw).x.cpu()
            metrics[name][nfe] = evaluate_restored(x, test, classifier)
    record = FewStepRecord(model, operator, seed, metrics, losses[-1], train_seconds, clock.wall - train_seconds,
                           clock.cpu)
    if saved is not None:
        write_atomic(saved, json.dumps({"nfes": list(nfes), "eval_size": len(test.y), "final_loss": record.final_loss,
                                   "train_seconds": train_seconds, "eval_seconds": record.eval_seconds,
                                   "cpu_seconds": record.cpu_seconds,
                                   "metrics": {s: {str(n): m.as_dict() for n, m in per.items()}
                                               for s, per in metrics.items()}}))
    return record


@dataclasses.dataclass(frozen=True)
class FewStepStudy:
    config: BaselineConfig
    operators: list[str]
    models: list[str]
    seeds: list[int]
    nfes: list[int]
    records: list[FewStepRecord]
    degraded: dict[str, ImageMetrics]
    classifier_accuracy: float
    device: str
    seconds: float
    cpu_seconds: float

    def values(self, model: str, sampler: str, operator: str, nfe: int, metric: str) -> list[float]:
        return [getattr(r.metrics[sampler][nfe], metric) for r in self.records
                if r.model == model and r.operator == operator and nfe in r.metrics.get(sampler, {})]

    def lines(self) -> list[tuple[str, str]]:
        """(model, sampler) pairs in table order."""
        return [(m, s) for m in self.models for s in (("ddim",) if m == "palette" else SAMPLERS)]


def run_fewstep_study(config: BaselineConfig = BaselineConfig(), *, operators: Sequence[str] = FEWSTEP_OPERATORS,
                      models: Sequence[str] = MODELS, seeds: Sequence[int] = (0, 1, 2),
                      nfes: Sequence[int] = FEWSTEP_NFES, device="cpu", run_dir: str | Path | None = None,
                      workers: int = 1, progress: bool = True) -> FewStepStudy:
    """Every model × operator × seed cell; one digit classifier (``baselines.operator_cells``) measures everything."""
    operators, seeds = check_operators(operators), check_seeds(seeds)
    models = list(dict.fromkeys(models))
    if not models or any(m not in MODELS for m in models):
        raise ValueError(f"models must be among {list(MODELS)}; got {models}")
    nfes = sorted(set(nfes))
    if not nfes or any(type(n) is not int or n < 1 for n in nfes):
        raise ValueError(f"nfes must be a non-empty list of ints >= 1; got {nfes}")
    clock, device = CpuClock(), torch.device(device)
    _, clean_accuracy, _, degraded, cells = operator_cells(config, operators, models, seeds, nfes, run_dir=run_dir,
                                                           device=device, progress=progress)
    records = run_cells(run_fewstep_cell, cells, workers=workers, device=device, progress=progress, desc="cells",
                        label=lambda c: f"{c['model']} · {c['operator']} · seed {c['seed']}")
    cpu = clock.cpu + sum(r.cpu_seconds for r in records) * (workers > 1 and device.type == "cpu")
    return FewStepStudy(config, operators, models, seeds, nfes, records, degraded, clean_accuracy, str(device),
                        clock.wall, cpu)


def _fmt(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    m, s = mean_std(values)
    return f"{m:.{digits}f}" if len(values) < 2 else f"{m:.{digits}f} ± {s:.{digits}f}"


def fewstep_tables(study: FewStepStudy) -> str:
    """One markdown table per operator and metric: rows model · sampler, columns NFE (mean ± std over seeds)."""
    out = []
    digits = {"psnr": 2, "accuracy": 3, "fd": 1}
    for op in study.operators:
        for metric in METRICS:
            head = "| model · sampler | " + " | ".join(f"NFE {n}" for n in study.nfes) + " |"
            rows = [head, "|---|" + "---|" * len(study.nfes)]
            for m, s in study.lines():
                cells = [_fmt(study.values(m, s, op, n, metric), digits[metric]) for n in study.nfes]
                rows.append(f"| {m} · {s} | " + " | ".join(cells) + " |")
            deg = getattr(study.degraded[op], metric)
            out.append(f"**{op}, {_LABEL[metric]}** (degraded input: {deg:.{digits[metric]}f})\n\n" + "\n".join(rows))
    return "\n\n".join(out)


def fewstep_verdict(study: FewStepStudy) -> list[str]:
    """Where the implicit sampler at NFE ≤ 5 stands against the Markovian one at the largest NFE, per family."""
    top = study.nfes[-1]
    few = [n for n in study.nfes if n <= 5]
    lines = []
    for op in study.operators:
        for m in study.models:
            if m == "palette":
                continue
            ref = {k: mean_std(study.values(m, "markov", op, top, k))[0] for k in METRICS}
            parts = []
            for n in few:
                got = {k: mean_std(study.values(m, "implicit", op, n, k))[0] for k in METRICS}
                parts.append(f"NFE {n}: PSNR {got['psnr'] - ref['psnr']:+.2f} dB, accuracy "
                             f"{got['accuracy'] - ref['accuracy']:+.3f}, FD {got['fd'] - ref['fd']:+.1f}")
            mk1 = {k: mean_std(study.values(m, "markov", op, few[0], k))[0] for k in METRICS} if few else None
            extra = (f"; Markovian at NFE {few[0]}: PSNR {mk1['psnr'] - ref['psnr']:+.2f} dB, FD "
                     f"{mk1['fd'] - ref['fd']:+.1f}") if mk1 else ""
            lines.append(f"{op} · {m}: implicit − Markovian@{top}: " + "; ".join(parts) + extra)
    return lines


def fewstep_figure(study: FewStepStudy) -> plt.Figure:
    """Metric against NFE: one row per operator, one column per metric; colour = model, line style = sampler."""
    fig, axes = plt.subplots(len(study.operators), len(METRICS), figsize=(4.2 * len(METRICS),
                                                                          3.2 * len(study.operators)), squeeze=False)
    colors = dict(zip(study.models, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    styles = {"markov": "-", "implicit": "--", "ode": ":", "ddim": "-."}
    for i, op in enumerate(study.operators):
        for j, metric in enumerate(METRICS):
            ax = axes[i][j]
            for m, s in study.lines():
                nfes = [n for n in study.nfes if study.values(m, s, op, n, metric)]
                means = [mean_std(study.values(m, s, op, n, metric))[0] for n in nfes]
                ax.plot(nfes, means, styles[s], color=colors[m], marker="o", ms=3, label=f"{m} · {s}")
            ax.set_xscale("log")
            ax.set_title(f"{op}", fontsize=9)
            ax.set_xlabel("NFE", fontsize=9)
            ax.set_ylabel(_LABEL[metric], fontsize=9)
            if metric == "fd":
                ax.set_yscale("log")
    axes[0][-1].legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    return fig


def fewstep_json(study: FewStepStudy) -> dict:
    cells = [{"model": r.model, "operator": r.operator, "seed": r.seed,
              "metrics": {s: {str(n): m.as_dict() for n, m in per.items()} for s, per in r.metrics.items()},
              "final_loss": r.final_loss, "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds,
              "cpu_seconds": r.cpu_seconds} for r in study.records]
    summary = {op: {f"{m}/{s}": {str(n): {k: dict(zip(("mean", "std"), mean_std(study.values(m, s, op, n, k))))
                                          for k in METRICS} for n in study.nfes if study.values(m, s, op, n, "psnr")}
                    for m, s in study.lines()} for op in study.operators}
    return {"config": study.config.as_dict(), "families": FAMILY_SETTINGS, "samplers": SAMPLERS,
            "operators": study.operators, "models": study.models, "seeds": study.seeds, "nfes": study.nfes,
            "classifier_accuracy": study.classifier_accuracy, "device": study.device,
            "degraded": {op: m.as_dict() for op, m in study.degraded.items()}, "summary": summary, "cells": cells,
            "seconds": study.seconds, "cpu_seconds": study.cpu_seconds}


def fewstep_report(study: FewStepStudy) -> tuple[str, dict, dict[str, plt.Figure]]:
    """The run folder of ``toy/baselines.py fewstep``: (results.md's text, results.json, figures)."""
    config = study.config
    setup = (f"{config.total_steps} training steps per model (batch {config.batch_size}, {config.net}), "
             f"{config.eval_size} held-out digits per operator, seeds {study.seeds}; digit classifier "
             f"accuracy on clean test digits {study.classifier_accuracy:.3f}. Families: {FAMILY_SETTINGS}; "
             f"samplers: {SAMPLERS}; Palette (v-prediction) with DDIM η = 0.")
    verdict = "\n".join(f"- {line}" for line in fewstep_verdict(study))
    report = (f"# Few-step sampling of the bridge families on MNIST\n\n{setup}\n\n## Verdict: implicit at "
              f"NFE ≤ 5 against Markovian at NFE {study.nfes[-1]} (means over seeds)\n\n{verdict}\n\n## Tables "
              f"(mean ± std over {len(study.seeds)} seeds)\n\n{fewstep_tables(study)}")
    return report, fewstep_json(study), {"fewstep.png": fewstep_figure(study)}
