"""Tables and figures of the MNIST ablation (``experiments.mnist_ablation``): mean ± std over
seeds, the markdown/JSON results, the LQ / variants / HQ grid, P-I2SB Fig. 6 and the loss curves;
:func:`write_report` writes them all to a run folder (``toy/mnist.py``)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..atomic import write_atomic
from .mnist import TEST_DEGRADATION_SEED, VARIANTS
from .mnist_ablation import Ablation, VariantRecord
from .mnist_eval import METRICS
from ..viz import image_grid, plot_band, savefig

__all__ = ["SummaryRow", "summarize", "markdown_table", "as_json", "samples_figure", "step_error_figure",
           "loss_figure", "FIGURES", "report_markdown", "write_report"]

def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value: a spread needs two seeds)."""
    v = torch.tensor(list(values), dtype=torch.float64)
    return float(v.mean()), float(v.std()) if v.numel() > 1 else math.nan


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One table row: mean and std over seeds of each metric (``METRICS``), plus

    ``delta_accuracy``: the accuracy minus (a) Vanilla-I2SB's on the same seed (paired);
    ``accuracy_true_da``: the accuracy when the ``da`` condition is the true vector;
    ``first_step_error`` / ``mean_step_error``: Fig. 6's error at the first step (``t = 1``)
    and averaged over all steps. Entries a row lacks are None.
    """

    name: str
    label: str
    strategy: str
    lq: bool
    da: bool
    seeds: int
    mean: dict[str, float]
    std: dict[str, float]
    delta_accuracy: tuple[float, float] | None = None
    accuracy_true_da: tuple[float, float] | None = None
    first_step_error: tuple[float, float] | None = None
    mean_step_error: tuple[float, float] | None = None


def summarize(ablation: Ablation) -> list[SummaryRow]:
    """The degraded-input row, then one row per variant (in the order run)."""
    degraded = ablation.degraded.as_dict()
    rows = [SummaryRow("degraded", "degraded input (y)", "–", False, False, len(ablation.seeds), degraded,
                       {k: math.nan for k in METRICS})]
    for name in ablation.variants:
        records = list(ablation.runs[name].values())
        stats = {k: _mean_std([getattr(r.metrics, k) for r in records]) for k in METRICS}
        delta = None
        if "a-vanilla" in ablation.runs and name != "a-vanilla":
            vanilla = ablation.runs["a-vanilla"]
            delta = _mean_std([r.metrics.accuracy - vanilla[r.seed].metrics.accuracy for r in records])
        true_da = _mean_std([r.metrics_true_da.accuracy for r in records]) if VARIANTS[name].da else None
        v = VARIANTS[name]
        rows.append(SummaryRow(
            name, v.label, v.strategy, v.lq, v.da, len(records), {k: m for k, (m, _) in stats.items()},
            {k: sd for k, (_, sd) in stats.items()}, delta, true_da,
            _mean_std([float(r.step_error[0]) for r in records]),
            _mean_std([float(r.step_error.mean()) for r in records]),
        ))
    return rows


def _fmt(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


_DIGITS = {"accuracy": 3, "psnr": 2, "ssim": 3, "fd": 1}


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """The rows as a markdown table (mean ± std over seeds; a single seed shows the value alone)."""
    head = ("| variant | hashing | lq | da | accuracy ↑ | Δacc vs (a) | acc, true da | PSNR ↑ | SSIM ↑ "
            "| FD ↓ | ε-err t=1 | ε-err mean |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        metric = [_fmt(r.mean[k], r.std[k], _DIGITS[k]) for k in METRICS]
        pair = lambda v, d=3: "–" if v is None else _fmt(v[0], v[1], d)  # noqa: E731
        lines.append("| " + " | ".join([
            r.label, r.strategy, "✓" if r.lq else "", "✓" if r.da else "", metric[0], pair(r.delta_accuracy),
            pair(r.accuracy_true_da), metric[1], metric[2], metric[3], pair(r.first_step_error, 2),
            pair(r.mean_step_error, 2)]) + " |")
    return "\n".join(lines)


def as_json(ablation: Ablation, rows: Sequence[SummaryRow] | None = None) -> dict:
    """Everything measured, as plain JSON-able values (NaN stays NaN; ``json`` writes it as NaN)."""
    rows = summarize(ablation) if rows is None else rows
    return {
        "config": ablation.config.as_dict(),
        "variants": ablation.variants,
        "seeds": ablation.seeds,
        "device": ablation.device,
        "wall_seconds": ablation.seconds,
        "classifier_test_accuracy": ablation.classifier_accuracy,
        "eval_size": len(ablation.test),
        "test_degradation_seed": TEST_DEGRADATION_SEED,
        "degraded": ablation.degraded.as_dict(),
        "estimator": [{"seed": s.seed, "seconds": s.seconds, **s.estimator_error.as_dict()}
                      for s in ablation.seed_records],
        "runs": [{
            "variant": r.variant, "seed": r.seed, "metrics": r.metrics.as_dict(),
            "metrics_true_da": None if r.metrics_true_da is None else r.metrics_true_da.as_dict(),
            "step_error": r.step_error.tolist(), "step_times": r.times.tolist(), "losses": r.losses,
            "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds,
        } for r in ablation.records],
        "summary": [dataclasses.asdict(r) for r in rows],
    }


# --------------------------------------------------------------------------- figures


def samples_figure(ablation: Ablation, *, seed: int | None = None, n: int = 8) -> plt.Figure:
    """LQ / each variant / HQ on the first ``n`` test digits (one seed, default the first)."""
    seed = ablation.seeds[0] if seed is None else seed
    rows = [ablation.test.y[:n]] + [ablation.runs[v][seed].samples[:n] for v in ablation.variants]
    rows.append(ablation.test.x[:n])
    titles = ["LQ (y)"] + [VARIANTS[v].label for v in ablation.variants] + ["HQ (x)"]
    return image_grid(rows, titles, max_cols=n, title=f"restored test digits (seed {seed})")


def _curves_figure(ablation: Ablation, values: Callable[[VariantRecord], torch.Tensor], x: torch.Tensor, *,
                   xlabel: str, ylabel: str, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, name in enumerate(ablation.variants):
        curves = torch.stack([values(r).double() for r in ablation.runs[name].values()])
        std = curves.std(dim=0) if curves.shape[0] > 1 else torch.zeros(curves.shape[1], dtype=torch.float64)
        plot_band(ax, x, curves.mean(dim=0), std, color=f"C{i % 10}", label=VARIANTS[name].label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def step_error_figure(ablation: Ablation) -> plt.Figure:
    """P-I2SB Fig. 6: mean RMS of ε_θ(X_n, t_n) − (X_n − X̂0)/σ_{t_n} at each sampler step, per variant."""
    times = ablation.records[0].times
    fig = _curves_figure(ablation, lambda r: r.step_error, times, xlabel="t_n  (sampling runs from t = 1 to 0)",
                         ylabel="RMS prediction error", title="per-step prediction error in inference "
                         f"(P-I2SB Fig. 6), mean ± std over {len(ablation.seeds)} seed(s)")
    fig.axes[0].invert_xaxis()
    return fig


def loss_figure(ablation: Ablation, *, window: int = 20) -> plt.Figure:
    """Training loss per step (moving average over ``window`` steps), per variant."""
    window = max(1, min(window, len(ablation.records[0].losses) // 5))  # short runs keep most of their points

    def smoothed(r: VariantRecord) -> torch.Tensor:
        return torch.tensor(r.losses, dtype=torch.float64).unfold(0, window, 1).mean(dim=1)

    steps = torch.arange(smoothed(ablation.records[0]).numel(), dtype=torch.float64) + window
    return _curves_figure(ablation, smoothed, steps, xlabel="training step", ylabel="bridge loss (ε MSE)",
                          title=f"training loss, moving average over {window} steps")


# --------------------------------------------------------------------------- the run folder

# file name -> (caption in results.md, the figure)
FIGURES = {"samples.png": ("samples", samples_figure), "fig6_step_error.png": ("per-step error", step_error_figure),
           "losses.png": ("losses", loss_figure)}


def _estimator_mae(ablation: Ablation) -> tuple[float, float, dict[str, float]]:
    """The degradation estimator's MAE, the constant guess's, and the MAE per varying parameter, over seeds."""
    est = [s.estimator_error for s in ablation.seed_records]
    per_param = {k: sum(e.per_param[k] for e in est) / len(est) for k in est[0].varying}
    return sum(e.mae for e in est) / len(est), sum(e.baseline_mae for e in est) / len(est), per_param


def report_markdown(ablation: Ablation, table: str, *, command: str, processes: int, threads: int,
                    wall_seconds: float) -> str:
    """results.md: the table, what each column means, the estimator's error, the run's cost and the figures."""
    est_mae, est_base, per_param = _estimator_mae(ablation)
    figures = "\n".join(f"![{caption}]({name})" for name, (caption, _) in FIGURES.items())
    return f"""# P-I2SB MNIST toy: Table 3 ablation and Fig. 3b

`{command}`

{table}

Mean ± std over {len(ablation.seeds)} seed(s) {ablation.seeds} (one value when there is one seed), on the first
{len(ablation.test)} held-out digits with one fixed degradation each (seed {TEST_DEGRADATION_SEED}),
identical for every variant and seed. **accuracy**: digit classifier's label accuracy on the restored
digits (the classifier scores {ablation.classifier_accuracy:.3f} on the 1,000 clean test digits);
**Δacc vs (a)**: paired with Vanilla-I2SB on the same seed; **acc, true da**: the same variant when its
degradation-aware condition is the true parameter vector instead of the estimator's; **FD**: Fréchet
distance on the digit classifier's features against the clean digits (not FID); **ε-err**: P-I2SB
Fig. 6's RMS of ε_θ(X_n, t_n) − (X_n − X̂0)/σ_t at the first step (t = 1) and averaged over the
{ablation.config.nfe} steps (for Cat it averages over both channels, the second a copy of y).

Degradation estimator (test-time `da` condition), MAE of the [0, 1] parameter vector:
{est_mae:.3f} (constant training-mean guess: {est_base:.3f}); per parameter:
{', '.join(f'{k} {v:.3f}' for k, v in per_param.items())}.

Device {ablation.device}, {processes} process(es) of {threads} thread(s); wall time {wall_seconds:.0f} s.

{figures}
"""


def write_report(ablation: Ablation, out: str | Path, *, command: str, workers: int, threads: int,
                 started: float) -> str:
    """Write results.md, results.json and :data:`FIGURES` to ``out``; return what a terminal shows of them.

    ``command``: the command line that ran it; ``workers``: the CPU processes asked for (at most one
    per cell, and one on CUDA); ``threads`` per process; ``started``: the run's ``time.perf_counter()``
    at its start (the wall time is taken once the figures are written).
    """
    out = Path(out)
    rows = summarize(ablation)
    table = markdown_table(rows)
    for name, (_, figure) in FIGURES.items():
        savefig(figure(ablation), out / name)
    wall = time.perf_counter() - started
    processes = min(workers, len(ablation.records)) if ablation.device == "cpu" else 1
    write_atomic(out / "results.json", json.dumps(as_json(ablation, rows) | {
        "command": command, "wall_seconds_total": wall, "threads": threads, "workers": workers}, indent=1))
    write_atomic(out / "results.md", report_markdown(ablation, table, command=command, processes=processes,
                                                      threads=threads, wall_seconds=wall))
    est_mae, est_base, _ = _estimator_mae(ablation)
    return (f"\n{table}\n\nestimator MAE {est_mae:.3f} (constant guess {est_base:.3f}); classifier on clean test "
            f"digits {ablation.classifier_accuracy:.3f}\nwrote {out}/results.md, results.json, "
            f"{', '.join(FIGURES)} in {wall:.0f} s")
