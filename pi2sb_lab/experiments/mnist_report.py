"""Tables and figures of the MNIST ablation (``experiments.mnist_ablation``): mean ± std over
seeds, the markdown/JSON results, the LQ / variants / HQ grid, P-I2SB Fig. 6 and the loss curves."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from .mnist import TEST_DEGRADATION_SEED, VARIANTS
from .mnist_ablation import Ablation, VariantRecord
from .mnist_eval import METRICS
from ..viz import image_grid, plot_band

__all__ = ["SummaryRow", "summarize", "markdown_table", "as_json", "samples_figure", "step_error_figure",
           "loss_figure"]

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
        records = [ablation.record(name, seed) for seed in ablation.seeds]
        stats = {k: _mean_std([getattr(r.metrics, k) for r in records]) for k in METRICS}
        delta = None
        if "a-vanilla" in ablation.variants and name != "a-vanilla":
            delta = _mean_std([r.metrics.accuracy - ablation.record("a-vanilla", r.seed).metrics.accuracy
                               for r in records])
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
    rows = [ablation.test.y[:n]] + [ablation.record(v, seed).samples[:n] for v in ablation.variants]
    rows.append(ablation.test.x[:n])
    titles = ["LQ (y)"] + [VARIANTS[v].label for v in ablation.variants] + ["HQ (x)"]
    return image_grid(rows, titles, max_cols=n, title=f"restored test digits (seed {seed})")


def _curves_figure(ablation: Ablation, values: Callable[[VariantRecord], torch.Tensor], x: torch.Tensor, *,
                   xlabel: str, ylabel: str, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, name in enumerate(ablation.variants):
        curves = torch.stack([values(ablation.record(name, s)).double() for s in ablation.seeds])
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
