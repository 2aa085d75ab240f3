"""Tables, figures and verdicts of the operator studies (``baselines.py``): I2SB Fig. 8 and Table 6 on MNIST.

Every number is a mean ± sample std over seeds; comparisons between two models are paired
(the difference is taken within a seed, then averaged), so the spread is that of the
difference, not of either model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from ..viz import image_grid
from .baselines import MODELS, OperatorStudy
from .cells import fmt_mean_std, mean_std
from .mnist_eval import METRICS

__all__ = ["DIGITS", "metric_table", "nfe_drops", "fig8_verdict", "fig8_figure", "table6_rows", "table6_markdown",
           "table6_verdict", "samples_figure", "as_json", "operator_report"]

DIGITS = {"accuracy": 3, "psnr": 2, "ssim": 3, "fd": 1}
_LABEL = {"accuracy": "digit accuracy ↑", "fd": "FD (classifier features) ↓", "psnr": "PSNR (dB) ↑",
          "ssim": "SSIM ↑"}


def _values(study: OperatorStudy, model: str, operator: str, nfe: int, metric: str) -> list[float]:
    return [getattr(study.record(model, operator, s).metrics[nfe], metric) for s in study.seeds]


def metric_table(study: OperatorStudy, metric: str) -> str:
    """Markdown: one row per operator × model (and the degraded input), one column per NFE."""
    head = "| operator | model | " + " | ".join(f"NFE {n}" for n in study.nfes) + " |"
    lines = [head, "|" + "---|" * (2 + len(study.nfes))]
    for op in study.operators:
        value = getattr(study.degraded[op], metric)
        lines.append(f"| {op} | degraded input | " + " | ".join(f"{value:.{DIGITS[metric]}f}" for _ in study.nfes)
                     + " |")
        for m in study.models:
            cells = [fmt_mean_std(_values(study, m, op, n, metric), DIGITS[metric]) for n in study.nfes]
            lines.append(f"| {op} | {MODELS[m].label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def nfe_drops(study: OperatorStudy, metric: str) -> dict[tuple[str, str], list[float]]:
    """Per (operator, model): metric at the smallest NFE minus at the largest, one value per seed (the "drop"
    of I2SB Fig. 8; for FD, lower is better, so a rise in FD is a *negative* drop: the sign is flipped)."""
    lo, hi = study.nfes[0], study.nfes[-1]
    sign = -1.0 if metric == "fd" else 1.0
    return {(op, m): [sign * (getattr(study.record(m, op, s).metrics[hi], metric)
                              - getattr(study.record(m, op, s).metrics[lo], metric)) for s in study.seeds]
            for op in study.operators for m in study.models}


def fig8_verdict(study: OperatorStudy, reference: str = "i2sb") -> list[str]:
    """I2SB Fig. 8's claim, per operator and metric: the loss going from the largest NFE to the smallest is
    smaller for I2SB than for each Palette (paired difference of the losses, mean ± std over seeds), and
    which model is better at the smallest NFE."""
    lines = []
    lo, hi = study.nfes[0], study.nfes[-1]
    others = [m for m in study.models if m != reference and not MODELS[m].bridge]
    for metric in ("accuracy", "fd", "psnr"):
        drops = nfe_drops(study, metric)
        for m in others:
            wins, cells = 0, []
            for op in study.operators:
                diff = [a - b for a, b in zip(drops[op, m], drops[op, reference])]  # > 0: I2SB loses less
                mean, std = mean_std(diff)
                better = mean > (0 if math.isnan(std) else 2 * std / math.sqrt(len(diff)))
                wins += better
                cells.append(f"{op} {fmt_mean_std(diff, DIGITS[metric], signed=True)}")
            lines.append(f"{metric}: loss from NFE {hi} to {lo}, {MODELS[m].label} minus I2SB (> 0: I2SB degrades "
                         f"less; significant in {wins}/{len(study.operators)} operators at 2 s.e.): " + "; ".join(cells))
    for m in others:
        for n in (lo, hi):
            cells = []
            for op in study.operators:
                diff = [a - b for a, b in zip(_values(study, reference, op, n, "accuracy"),
                                              _values(study, m, op, n, "accuracy"))]
                cells.append(f"{op} {fmt_mean_std(diff, 3, signed=True)}")
            lines.append(f"accuracy at NFE {n}, I2SB minus {MODELS[m].label} (> 0: I2SB better): " + "; ".join(cells))
    return lines


def fig8_figure(study: OperatorStudy, metrics: Sequence[str] = ("accuracy", "fd", "psnr")) -> plt.Figure:
    """I2SB Fig. 8 on MNIST: each metric (rows) against NFE for every operator (columns), mean ± std bands."""
    fig, axes = plt.subplots(len(metrics), len(study.operators), figsize=(3.2 * len(study.operators),
                                                                          2.6 * len(metrics)), squeeze=False)
    nfes = torch.tensor(study.nfes, dtype=torch.float64)
    for j, op in enumerate(study.operators):
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            for k, m in enumerate(study.models):
                stats = [mean_std(_values(study, m, op, n, metric)) for n in study.nfes]
                mean = torch.tensor([s[0] for s in stats])
                std = torch.tensor([0.0 if math.isnan(s[1]) else s[1] for s in stats])
                ax.plot(nfes, mean, "o-", ms=3, color=f"C{k}", label=MODELS[m].label)
                ax.fill_between(nfes, mean - std, mean + std, color=f"C{k}", alpha=0.2)
            ax.axhline(getattr(study.degraded[op], metric), color="0.5", ls="--", lw=1, label="degraded input")
            ax.set_xscale("log")
            if metric == "fd":
                ax.set_yscale("log")
            if i == 0:
                ax.set_title(op, fontsize=10)
            if i == len(metrics) - 1:
                ax.set_xlabel("NFE")
            if j == 0:
                ax.set_ylabel(_LABEL[metric], fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"I2SB Fig. 8 on MNIST: I2SB vs Palette across NFE ({len(study.seeds)} seeds, "
                 f"{study.config.total_steps} training steps, {study.config.eval_size} test digits)", fontsize=10)
    fig.tight_layout()
    return fig


def table6_rows(study: OperatorStudy, nfe: int) -> list[dict]:
    """Per operator: SDE and OT-ODE metrics and their paired difference (OT-ODE − SDE) at ``nfe``."""
    rows = []
    for op in study.operators:
        row = {"operator": op, "nfe": nfe}
        for metric in METRICS:
            sde, ot = _values(study, "i2sb", op, nfe, metric), _values(study, "i2sb-ot", op, nfe, metric)
            row[metric] = {"sde": mean_std(sde), "ot_ode": mean_std(ot),
                           "diff": mean_std([b - a for a, b in zip(sde, ot)]),
                           "diff_values": [b - a for a, b in zip(sde, ot)]}
        rows.append(row)
    return rows


def table6_markdown(study: OperatorStudy, nfe: int) -> str:
    """I2SB Table 6 on MNIST: OT-ODE − SDE differences (paired per seed) in FD and accuracy, with both values."""
    lines = ["| operator | FD: SDE | FD: OT-ODE | FD diff | acc: SDE | acc: OT-ODE | acc diff | PSNR diff |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table6_rows(study, nfe):
        fd, acc, ps = row["fd"], row["accuracy"], row["psnr"]
        lines.append(f"| {row['operator']} | {_ms(fd['sde'], 1)} | {_ms(fd['ot_ode'], 1)} | "
                     f"{_ms(fd['diff'], 1, True)} | {_ms(acc['sde'], 3)} | {_ms(acc['ot_ode'], 3)} | "
                     f"{_ms(acc['diff'], 3, True)} | {_ms(ps['diff'], 2, True)} |")
    return "\n".join(lines)


def _ms(ms: tuple[float, float], digits: int, signed: bool = False) -> str:
    mean, std = ms
    head = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return head if math.isnan(std) else f"{head} ± {std:.{digits}f}"


def table6_verdict(study: OperatorStudy, nfe: int) -> list[str]:
    """I2SB Table 6's claim: OT-ODE helps deblurring (FD ↓, accuracy ↑) and hurts JPEG (FD ↑, accuracy ↓).
    Per operator, whether the paired difference has the paper's sign at 2 standard errors."""
    lines = []
    for row in table6_rows(study, nfe):
        op = row["operator"]
        expect = -1 if op.startswith("blur") else 1 if op.startswith("jpeg") else 0  # sign of the FD change
        parts = []
        for metric, sign in (("fd", expect), ("accuracy", -expect)):
            values = row[metric]["diff_values"]
            mean, std = mean_std(values)
            se = 0.0 if math.isnan(std) else std / math.sqrt(len(values))
            if sign == 0:
                state = "no claim"
            elif mean * sign > 2 * se:
                state = "as the paper"
            elif mean * sign < -2 * se:
                state = "opposite to the paper"
            else:
                state = "no significant change"
            parts.append(f"{metric} {_ms((mean, std), DIGITS[metric], True)} ({state})")
        lines.append(f"{op}: OT-ODE − SDE: " + ", ".join(parts))
    return lines


def samples_figure(study: OperatorStudy, nfes: Sequence[int], seed: int | None = None,
                   max_cols: int = 6) -> plt.Figure:
    """Per operator: the degraded input, each model's restoration at each of ``nfes``, and the clean digits."""
    seed = study.seeds[0] if seed is None else seed
    rows, titles = [], []
    for op in study.operators:
        test = study.tests[op]
        rows.append(test.y[:max_cols])
        titles.append(f"{op}: y")
        for m in study.models:
            for n in nfes:
                rows.append(study.record(m, op, seed).samples[n][:max_cols])
                titles.append(f"{MODELS[m].label}, NFE {n}")
        rows.append(test.x[:max_cols])
        titles.append("clean x")
    return image_grid(rows, titles, max_cols=max_cols, size=0.9)


def as_json(study: OperatorStudy) -> dict:
    """Every number of the study as plain JSON: per cell and NFE, and mean ± std per operator × model × NFE."""
    cells = [{"model": r.model, "operator": r.operator, "seed": r.seed,
              "metrics": {str(n): m.as_dict() for n, m in r.metrics.items()}, "final_loss": r.losses[-1],
              "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds, "cpu_seconds": r.cpu_seconds}
             for r in study.records]
    summary = {op: {m: {str(n): {k: dict(zip(("mean", "std"), mean_std(_values(study, m, op, n, k))))
                                 for k in METRICS} for n in study.nfes} for m in study.models}
               for op in study.operators}
    return {"config": study.config.as_dict(), "operators": study.operators, "models": study.models,
            "seeds": study.seeds, "nfes": study.nfes, "eval_size": study.config.eval_size,
            "classifier_accuracy": study.classifier_accuracy, "device": study.device,
            "degraded": {op: m.as_dict() for op, m in study.degraded.items()}, "summary": summary, "cells": cells,
            "seconds": study.seconds, "cpu_seconds": study.cpu_seconds}


def operator_report(study: OperatorStudy, which: str) -> tuple[str, dict, dict[str, plt.Figure]]:
    """The run folder of ``toy/baselines.py fig8`` / ``table6``: (results.md's text, results.json, figures)."""
    if which not in ("fig8", "table6"):
        raise ValueError(f"which must be 'fig8' or 'table6'; got {which!r}")
    config = study.config
    tables = "\n\n".join(f"**{_LABEL[m]}** (mean ± std over {len(study.seeds)} seeds)\n\n"
                         f"{metric_table(study, m)}" for m in ("accuracy", "fd", "psnr"))
    setup = (f"{config.total_steps} training steps per model (batch {config.batch_size}, {config.net}), "
             f"{config.eval_size} held-out digits per operator, seeds {study.seeds}; digit classifier "
             f"accuracy on clean test digits {study.classifier_accuracy:.3f}.")
    if which == "fig8":
        verdict = "\n".join(f"- {line}" for line in fig8_verdict(study))
        figures = {"fig8.png": fig8_figure(study), "samples.png": samples_figure(study, [study.nfes[0], study.nfes[-1]])}
        report = (f"# I2SB Fig. 8 on MNIST: I2SB vs Palette across NFE\n\n{setup}\n\n## Verdict\n\n{verdict}\n\n"
                  f"## Tables\n\n{tables}")
    else:
        nfe = study.nfes[-1]
        verdict = "\n".join(f"- {line}" for line in table6_verdict(study, nfe))
        figures = {"table6.png": fig8_figure(study), "samples.png": samples_figure(study, [nfe])}
        report = (f"# I2SB Table 6 on MNIST: OT-ODE vs SDE\n\n{setup}\n\n## OT-ODE − SDE at NFE {nfe} (paired per "
                  f"seed)\n\n{table6_markdown(study, nfe)}\n\n## Verdict (the paper: OT-ODE helps deblurring, "
                  f"hurts JPEG)\n\n{verdict}\n\n## Tables\n\n{tables}")
    return report, as_json(study), figures
