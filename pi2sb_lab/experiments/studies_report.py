"""Tables, figures and verdicts of the SDEdit/ODEdit study (``editing.py``) and the training-budget study
(``budget.py``). Means ± sample std over seeds; comparisons are paired within a seed."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter
import torch

from ..viz import image_grid
from .budget import BudgetStudy
from .cells import fmt_mean_std, mean_std
from .editing import EditStudy, fidelity_at_equal_realism, summary_over_conditions
from .mnist import VARIANTS

__all__ = ["edit_table", "edit_verdict", "edit_frontier_figure", "edit_samples_figure", "edit_json",
           "budget_table", "budget_verdict", "budget_figure", "budget_json", "edit_report", "budget_report"]

_EDIT_METRICS = (("psnr_clean", "PSNR to clean (dB) ↑", 2), ("psnr_obs", "PSNR to input (dB; 100 = identical)", 2),
                 ("accuracy", "accuracy ↑", 3), ("fd", "FD ↓", 1))


def edit_table(study: EditStudy) -> str:
    """One row per setting (and the corrupted input): each metric averaged over the conditions."""
    lines = ["| restorer | NFE / image | " + " | ".join(label for _, label, _ in _EDIT_METRICS) + " |",
             "|---|---|" + "---|" * len(_EDIT_METRICS)]
    deg = {k: sum(getattr(study.degraded[c], k) for c in study.test.conditions) / len(study.test.conditions)
           for k, _, _ in _EDIT_METRICS}
    lines.append("| corrupted input | 0 | " + " | ".join(f"{deg[k]:.{d}f}" for k, _, d in _EDIT_METRICS) + " |")
    for st in study.settings:
        nfe = study.record(st, study.seeds[0]).nfe
        cells = []
        for k, _, d in _EDIT_METRICS:
            m, s = summary_over_conditions(study, st, k)
            cells.append(f"{m:.{d}f}" if math.isnan(s) else f"{m:.{d}f} ± {s:.{d}f}")
        lines.append(f"| {st.label} | {nfe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _delta_per_seed(study: EditStudy, seed: int, condition=None) -> list[float]:
    conditions = study.test.conditions if condition is None else [condition]
    return [d for c in conditions for _, d in fidelity_at_equal_realism(study, seed, c)]


def edit_verdict(study: EditStudy) -> list[str]:
    """ODEdit §4.3's claim: at equal realism (FD) ODEdit keeps more fidelity (PSNR to the clean digit) than
    SDEdit. Per condition and overall: the mean over comparable ODEdit points of ODEdit's PSNR minus the best
    PSNR of an SDEdit setting at least as realistic, mean ± std over seeds; and how many ODEdit points had
    such a rival."""
    lines = []
    overall = []
    for seed in study.seeds:
        values = _delta_per_seed(study, seed)
        overall.append(sum(values) / len(values) if values else math.nan)
    comparable = sum(len(_delta_per_seed(study, s)) for s in study.seeds)
    total = len(study.seeds) * len(study.test.conditions) * sum(st.method == "odedit" for st in study.settings)
    finite = [v for v in overall if not math.isnan(v)]
    if finite:
        lines.append(f"overall: ODEdit − best SDEdit at least as realistic, PSNR to clean = "
                     f"{fmt_mean_std(finite, 2, signed=True)} dB (> 0: ODEdit keeps more fidelity; mean over the "
                     f"comparable points per seed, ± std over {len(finite)} seeds); {comparable} of {total} ODEdit "
                     f"points had an SDEdit setting with FD no larger")
    else:
        lines.append(f"overall: no comparison possible, all {total} ODEdit points are more realistic than every "
                     f"SDEdit setting")
    for c in study.test.conditions:
        per_seed = [sum(v) / len(v) for s in study.seeds if (v := _delta_per_seed(study, s, c))]
        if per_seed:
            lines.append(f"{c[0]} severity {c[1]}: {fmt_mean_std(per_seed, 2, signed=True)} dB "
                         f"({len(per_seed)} seed(s) comparable)")
        else:
            lines.append(f"{c[0]} severity {c[1]}: every ODEdit point more realistic than every SDEdit setting")
    return lines


def edit_frontier_figure(study: EditStudy) -> plt.Figure:
    """Fidelity (PSNR to clean) against realism (FD, log) per condition: SDEdit's t0-curve, ODEdit's K-curve
    (means over seeds), the corrupted input as a star."""
    conds = study.test.conditions
    names = list(dict.fromkeys(c for c, _ in conds))
    sevs = list(dict.fromkeys(s for _, s in conds))
    fig, axes = plt.subplots(len(sevs), len(names), figsize=(2.6 * len(names), 2.4 * len(sevs)), squeeze=False)
    for (name, sev) in conds:
        ax = axes[sevs.index(sev), names.index(name)]
        for k, method in enumerate(("sdedit", "odedit")):
            pts = []
            for st in (s for s in study.settings if s.method == method):
                fd = mean_std([study.record(st, s).metrics[name, sev].fd for s in study.seeds])[0]
                ps = mean_std([study.record(st, s).metrics[name, sev].psnr_clean for s in study.seeds])[0]
                pts.append((fd, ps, st))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=f"C{k}",
                        label="SDEdit (t0)" if method == "sdedit" else "ODEdit (K)")
        d = study.degraded[name, sev]
        ax.plot([d.fd], [d.psnr_clean], "k*", ms=8, label="input")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short log axis overlap
        ax.set_title(f"{name}, severity {sev}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6)
    axes[-1, 0].set_xlabel("FD ↓ (realism)", fontsize=8)
    axes[-1, 0].set_ylabel("PSNR to clean ↑", fontsize=8)
    fig.suptitle("ODEdit Table 1 on MNIST: fidelity vs realism", fontsize=10)
    fig.tight_layout()
    return fig


def edit_samples_figure(study: EditStudy, seed: int | None = None) -> plt.Figure:
    """The first test digit under every condition (columns): corrupted, each setting's restoration, clean."""
    seed = study.seeds[0] if seed is None else seed
    n = study.test.x.shape[0]
    rows = [study.test.y[::n]] + [study.record(st, seed).samples for st in study.settings]
    rows.append(study.test.x[:1].expand(len(study.test.conditions), -1, -1, -1))
    titles = ["corrupted"] + [st.label for st in study.settings] + ["clean"]
    return image_grid(rows, titles, max_cols=len(study.test.conditions), size=0.9)


def edit_json(study: EditStudy) -> dict:
    records = [{"seed": r.seed, "method": r.setting.method, "value": r.setting.value, "nfe": r.nfe,
                "cpu_seconds": r.cpu_seconds,
                "metrics": {f"{c}-{s}": m.as_dict() for (c, s), m in r.metrics.items()}} for r in study.records]
    summary = {st.label: {k: dict(zip(("mean", "std"), summary_over_conditions(study, st, k)))
                          for k, _, _ in _EDIT_METRICS} for st in study.settings}
    return {"config": study.config.as_dict(), "seeds": study.seeds, "conditions": study.test.conditions,
            "classifier_accuracy": study.classifier_accuracy,
            "degraded": {f"{c}-{s}": m.as_dict() for (c, s), m in study.degraded.items()},
            "summary": summary, "verdict": edit_verdict(study), "records": records, "device": study.device,
            "seconds": study.seconds, "cpu_seconds": study.cpu_seconds}


# --------------------------------------------------------------------------- budget


def _rows(study: BudgetStudy):
    """(label, variant, per-seed metric getter) for every variant, and a DDIM-decoded row for Noise ones."""
    for v in study.variants:
        yield VARIANTS[v].label, v, lambda r, b: r.metrics[b]
        if study.records and study.record(v, study.seeds[0]).ddim_metrics is not None:
            yield VARIANTS[v].label + " (DDIM decode)", v, lambda r, b: r.ddim_metrics[b]


def budget_table(study: BudgetStudy, metric: str = "accuracy", digits: int = 3) -> str:
    """Rows: variants (Noise also decoded by DDIM); columns: each budget's metric and, when a-vanilla ran, the
    paired difference to it."""
    paired = "a-vanilla" in study.variants
    head = "| variant | " + " | ".join(f"{b} steps" + (f" | Δ vs (a), {b}" if paired else "") for b in study.budgets)
    lines = [head + " |", "|---|" + "---|" * (len(study.budgets) * (2 if paired else 1))]
    lines.append("| degraded input | " + " | ".join(f"{getattr(study.degraded, metric):.{digits}f}"
                                                   + (" | –" if paired else "") for _ in study.budgets) + " |")
    for label, v, get in _rows(study):
        cells = []
        for b in study.budgets:
            vals = [getattr(get(study.record(v, s), b), metric) for s in study.seeds]
            cells.append(fmt_mean_std(vals, digits))
            if paired:
                base = [getattr(study.record("a-vanilla", s).metrics[b], metric) for s in study.seeds]
                cells.append("–" if v == "a-vanilla" and "DDIM" not in label
                             else fmt_mean_std([a - c for a, c in zip(vals, base)], digits, signed=True))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _reference(study: BudgetStudy, variant: str) -> str | None:
    """What a variant is compared with: Table 3's hashed (d)–(f) with (c) (same conditions, no hash), the rest
    with (a) Vanilla-I2SB — each when it ran."""
    v = VARIANTS[variant]
    if v.strategy != "origin" and v.lq and v.da and "c-lq-da" in study.variants:
        return "c-lq-da"
    return "a-vanilla" if "a-vanilla" in study.variants and variant != "a-vanilla" else None


def _paired(study: BudgetStudy, b: int, metric: str, get_a, va: str, get_b, vb: str) -> tuple[list[float], str]:
    diff = [getattr(get_a(study.record(va, s), b), metric) - getattr(get_b(study.record(vb, s), b), metric)
            for s in study.seeds]
    m, sd = mean_std(diff)
    se = 0.0 if math.isnan(sd) else sd / math.sqrt(len(diff))
    sign = -1 if metric == "fd" else 1
    state = "better" if sign * m > 2 * se else "worse" if sign * m < -2 * se else "not different"
    return diff, state


def budget_verdict(study: BudgetStudy, metrics=("accuracy", "psnr", "fd")) -> list[str]:
    """Per budget and metric: the ordering by mean, and each variant against its reference (Table 3's hashed
    variants against (c), the others against (a)) at 2 standard errors of the paired difference; Noise's DDIM
    decode against its learned decode; whether the ordering changed between budgets."""
    lines, digits = [], {"accuracy": 3, "psnr": 2, "fd": 1, "ssim": 3}
    for metric in metrics:
        orders, sign = [], (-1 if metric == "fd" else 1)
        for b in study.budgets:
            means = {label: mean_std([getattr(get(study.record(v, s), b), metric) for s in study.seeds])[0]
                     for label, v, get in _rows(study)}
            order = sorted(means, key=lambda k: -sign * means[k])
            orders.append(order)
            cells = []
            for v in study.variants:
                ref = _reference(study, v)
                if ref is not None:
                    diff, state = _paired(study, b, metric, lambda r, b: r.metrics[b], v, lambda r, b: r.metrics[b], ref)
                    cells.append(f"{v} vs {ref}: {state} ({fmt_mean_std(diff, digits[metric], signed=True)})")
                if study.record(v, study.seeds[0]).ddim_metrics is not None:
                    diff, state = _paired(study, b, metric, lambda r, b: r.ddim_metrics[b], v,
                                          lambda r, b: r.metrics[b], v)
                    cells.append(f"{v} DDIM decode vs learned decode: {state} "
                                 f"({fmt_mean_std(diff, digits[metric], signed=True)})")
            lines.append(f"{metric}, {b} steps: {' > '.join(order)}" + (f". {'; '.join(cells)}" if cells else ""))
        if len(orders) > 1:
            lines.append(f"{metric}: ordering by mean " + ("unchanged" if all(o == orders[0] for o in orders)
                                                           else "changed") + f" across budgets {study.budgets} "
                         "(near-ties swap; the paired differences say which gaps are real)")
    return lines


def budget_figure(study: BudgetStudy) -> plt.Figure:
    """Accuracy, FD and PSNR against training steps, one line per variant (mean ± std over seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    steps = torch.tensor(study.budgets, dtype=torch.float64)
    for ax, (metric, label) in zip(axes, (("accuracy", "digit accuracy ↑"), ("fd", "FD ↓"), ("psnr", "PSNR ↑"))):
        for k, (name, v, get) in enumerate(_rows(study)):
            stats = [mean_std([getattr(get(study.record(v, s), b), metric) for s in study.seeds])
                     for b in study.budgets]
            mean = torch.tensor([m for m, _ in stats])
            std = torch.tensor([0.0 if math.isnan(s) else s for _, s in stats])
            ax.plot(steps, mean, marker="o", ms=3, color=f"C{k}", label=name, ls="--" if "DDIM" in name else "-")
            ax.fill_between(steps, mean - std, mean + std, color=f"C{k}", alpha=0.15)
        ax.axhline(getattr(study.degraded, metric), color="0.5", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xticks(study.budgets, [f"{b:,}" for b in study.budgets])
        ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short log axis overlap
        if metric == "fd":
            ax.set_yscale("log")  # the degraded input's FD is ~100× the restorations'
        ax.set_xlabel("training steps")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"P-I2SB verdict vs training budget ({len(study.seeds)} seeds, {study.config.eval_size} digits)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def budget_json(study: BudgetStudy) -> dict:
    records = [{"variant": r.variant, "seed": r.seed, "metrics": {str(b): m.as_dict() for b, m in r.metrics.items()},
                "ddim_metrics": None if r.ddim_metrics is None else
                {str(b): m.as_dict() for b, m in r.ddim_metrics.items()},
                "final_loss": r.losses[-1], "cpu_seconds": r.cpu_seconds} for r in study.records]
    return {"config": study.config.as_dict(), "prior_config": study.prior_config.as_dict(), "budgets": study.budgets,
            "variants": study.variants, "seeds": study.seeds, "ddim_nfe": study.ddim_nfe,
            "classifier_accuracy": study.classifier_accuracy, "degraded": study.degraded.as_dict(),
            "verdict": budget_verdict(study), "records": records, "device": study.device, "seconds": study.seconds,
            "cpu_seconds": study.cpu_seconds}



def edit_report(study: EditStudy, corruptions, severities) -> tuple[str, dict, dict[str, plt.Figure]]:
    """The run folder of ``toy/baselines.py odedit`` (``corruptions`` at ``severities``): (results.md's text,
    results.json, figures)."""
    config = study.config
    verdict = "\n".join(f"- {line}" for line in edit_verdict(study))
    report = (f"# ODEdit Table 1 on MNIST: SDEdit vs ODEdit under unseen corruptions\n\n"
              f"One VP prior per seed ({config.total_steps} steps, {config.prediction}-prediction, {config.net}); "
              f"{config.eval_size} held-out digits × {len(study.test.conditions)} conditions "
              f"({', '.join(corruptions)} at severities {severities}); seeds {study.seeds}. ODEdit: "
              f"{config.odedit_nfe} uniform DDIM steps to t = {config.odedit_t_end}, Langevin at 4 latents, "
              f"ε = {config.step_size:g}, T = {config.temperature:.3g}. Classifier accuracy on clean test digits "
              f"{study.classifier_accuracy:.3f}.\n\n## Averaged over the conditions (mean ± std over seeds)\n\n"
              f"{edit_table(study)}\n\n## Verdict: fidelity at equal realism (ODEdit §4.3)\n\n{verdict}")
    figures = {"frontier.png": edit_frontier_figure(study), "samples.png": edit_samples_figure(study)}
    return report, edit_json(study), figures


def budget_report(study: BudgetStudy) -> tuple[str, dict, dict[str, plt.Figure]]:
    """The run folder of ``toy/baselines.py budget``: (results.md's text, results.json, figures)."""
    config, prior = study.config, study.prior_config
    verdict = "\n".join(f"- {line}" for line in budget_verdict(study))
    tables = "\n\n".join(f"**{name}** (mean ± std over {len(study.seeds)} seeds; Δ paired per seed)\n\n"
                         f"{budget_table(study, metric, digits)}"
                         for metric, name, digits in (("accuracy", "digit accuracy ↑", 3), ("fd", "FD ↓", 1),
                                                      ("psnr", "PSNR (dB) ↑", 2)))
    report = (f"# P-I2SB's verdict vs training budget (MNIST, Table 3 / Fig. 3b variants)\n\n"
              f"Budgets {study.budgets} steps (batch {config.batch_size}, {config.net}), NFE {config.nfe}, "
              f"{config.eval_size} held-out digits with the mnist32 degradations, seeds {study.seeds}; "
              f"classifier accuracy on clean digits {study.classifier_accuracy:.3f}. Noise-I2SB's DDIM decode: "
              f"VP prior of {prior.total_steps} steps, {study.ddim_nfe} DDIM steps.\n\n## Verdict\n\n"
              f"{verdict}\n\n## Tables\n\n{tables}")
    return report, budget_json(study), {"budget.png": budget_figure(study)}
