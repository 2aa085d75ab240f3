"""The pseudo-hashing ablation on the blind 2D problem: strategies × OT-ODE on/off × seeds, then a table.

``run_ablation`` calls ``twod.train_and_restore`` once per cell
(all with one ``BridgeConfig``); within a seed every strategy sees the same
clean sets, test degradations and training pairs, so ``summarize`` can report
each strategy's paired difference to Origin as well as mean ± std. Notebook 04
and ``toy/twod.py`` both go through here.

When both Origin and Noise run, a control row ``origin+denoise`` passes
Origin's restored points through Noise's decoder (the exact denoiser at
``λ``): it separates what Noise-I2SB gains from its hashing from what it gains
from the denoiser alone.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..hashing import EmpiricalPosteriorDenoiser, get_strategy
from .twod import DEGRADATIONS, Blind2DProblem, BridgeConfig, Metrics2D, evaluate, make_problem, \
    train_and_restore
from ..viz import plot_restored_2d, savefig

__all__ = ["RunRecord", "Ablation", "SummaryRow", "check_strategies", "run_ablation", "summarize",
           "markdown_table", "ablation_figure", "as_json", "write_report"]

METRICS = ("dist", "accuracy", "sw2")


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One trained and evaluated cell: its metrics, fit time, mean loss of the last 10% of steps, restored points."""

    strategy: str
    ot_ode: bool
    seed: int
    metrics: Metrics2D
    seconds: float
    final_loss: float
    restored: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Ablation:
    """All cells, plus the no-restoration baseline (``y`` as is) of each seed, and how they were run."""

    records: list[RunRecord]
    baselines: dict[int, Metrics2D]
    config: BridgeConfig
    problem: dict
    seconds: float

    def test_problem(self, seed: int) -> Blind2DProblem:
        """The blind problem (train set, test pairs) the runs of ``seed`` used."""
        return _problem(seed, **self.problem)


def check_strategies(names: Sequence[str]) -> list[str]:
    """Canonical names (``"Cat-I2SB"`` → ``"cat"``), duplicates dropped; ValueError listing the valid ones."""
    if isinstance(names, str) or len(names) == 0:
        raise ValueError(f"strategies must be a non-empty list of names; got {names!r}")
    canonical = [get_strategy(name).name for name in names]
    return list(dict.fromkeys(canonical))


@functools.lru_cache(maxsize=8)
def _problem(seed: int, n_train: int, n_test: int, degradation: str) -> Blind2DProblem:
    return make_problem(seed, n_train=n_train, n_test=n_test, degradation=degradation)


def _run_cell(cell: tuple) -> RunRecord:
    strategy, ot_ode, seed, config, problem_kw = cell
    result = train_and_restore(_problem(seed, **problem_kw), strategy, ot_ode=ot_ode, seed=seed, config=config)
    tail = max(1, config.total_steps // 10)
    return RunRecord(strategy, ot_ode, seed, result.metrics, result.fitted.seconds,
                     result.fitted.losses[-tail:].mean().item(), result.restored.detach())


def run_ablation(strategies: Sequence[str] = ("origin", "cat", "res", "noise"),
                 ot_ode: Sequence[bool] = (False, True), seeds: Sequence[int] = (0, 1, 2), *,
                 config: BridgeConfig = BridgeConfig(), n_train: int = 1000, n_test: int = 1000,
                 degradation: str = "default", workers: int = 1,
                 progress: Callable[[RunRecord], None] | None = None) -> Ablation:
    """Train and evaluate every (strategy, OT-ODE setting, seed); ``workers > 1`` runs cells in processes.

    All arguments are checked before anything is trained: unknown strategy or
    degradation names raise ``ValueError`` with the valid ones.
    """
    strategies = check_strategies(strategies)
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {list(DEGRADATIONS)}; got {degradation!r}")
    ot_ode, seeds = list(dict.fromkeys(bool(o) for o in ot_ode)), list(dict.fromkeys(int(s) for s in seeds))
    if not ot_ode or not seeds or workers < 1:
        raise ValueError(f"need at least one OT-ODE setting, one seed and workers >= 1; got ot_ode={ot_ode}, "
                         f"seeds={seeds}, workers={workers}")
    problem_kw = dict(n_train=n_train, n_test=n_test, degradation=degradation)
    cells = [(s, o, seed, config, problem_kw) for seed in seeds for o in ot_ode for s in strategies]
    start = time.perf_counter()
    records = []
    if workers == 1:
        for cell in cells:
            records.append(_run_cell(cell))
            if progress is not None:
                progress(records[-1])
    else:
        # spawn, not fork: a forked child inherits torch's thread pool in an undefined state.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for record in pool.map(_run_cell, cells):
                records.append(record)
                if progress is not None:
                    progress(record)
    if "origin" in strategies and "noise" in strategies:
        records += [_denoised_control(r, _problem(r.seed, **problem_kw), config)
                    for r in list(records) if r.strategy == "origin"]
    baselines = {seed: evaluate(_problem(seed, **problem_kw).test_y, _problem(seed, **problem_kw), seed=seed)
                 for seed in seeds}
    return Ablation(records, baselines, config, problem_kw, time.perf_counter() - start)


def _denoised_control(origin: RunRecord, problem: Blind2DProblem, config: BridgeConfig) -> RunRecord:
    lam = torch.full((origin.restored.shape[0],), config.noise_level, dtype=origin.restored.dtype)
    denoised = EmpiricalPosteriorDenoiser(problem.train_x)(origin.restored, lam)
    return dataclasses.replace(origin, strategy="origin+denoise", metrics=evaluate(denoised, problem, seed=origin.seed),
                               seconds=0.0, restored=denoised)


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """Mean and std over seeds of each metric for one (strategy, OT-ODE) cell; ``delta_dist``: paired
    ``dist − dist(origin)`` over the same seeds and setting (None for Origin or without an Origin run);
    ``wins``: seeds where ``dist`` beat Origin's."""

    strategy: str
    ot_ode: bool | None
    n: int
    mean: dict[str, float]
    std: dict[str, float]
    delta_dist: tuple[float, float] | None
    wins: int | None
    seconds: float


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)


def summarize(ablation: Ablation) -> list[SummaryRow]:
    """One row per (strategy, OT-ODE), in run order, after a first row for the degraded input itself."""
    base = list(ablation.baselines.values())
    rows = [SummaryRow("degraded y (no restoration)", None, len(base),
                       {m: _mean_std([getattr(b, m) for b in base])[0] for m in METRICS},
                       {m: _mean_std([getattr(b, m) for b in base])[1] for m in METRICS}, None, None, 0.0)]
    origin = {(r.ot_ode, r.seed): r.metrics.dist for r in ablation.records if r.strategy == "origin"}
    for key in dict.fromkeys((r.strategy, r.ot_ode) for r in ablation.records):
        cell = [r for r in ablation.records if (r.strategy, r.ot_ode) == key]
        stats = {m: _mean_std([getattr(r.metrics, m) for r in cell]) for m in METRICS}
        paired = [r.metrics.dist - origin[(r.ot_ode, r.seed)] for r in cell if (r.ot_ode, r.seed) in origin]
        has_delta = key[0] != "origin" and len(paired) == len(cell)
        rows.append(SummaryRow(key[0], key[1], len(cell), {m: s[0] for m, s in stats.items()},
                               {m: s[1] for m, s in stats.items()}, _mean_std(paired) if has_delta else None,
                               sum(d < 0 for d in paired) if has_delta else None,
                               sum(r.seconds for r in cell) / len(cell)))
    return rows


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    """The summary as a markdown table, mean ± std over seeds (std with n − 1)."""
    fmt = lambda mean, std, d=3: f"{mean:.{d}f} ± {std:.{d}f}"  # noqa: E731
    lines = ["| strategy | OT-ODE | seeds | dist to true x ↓ | Δdist vs Origin (paired) | beats Origin | "
             "cluster acc ↑ | sliced W₂ ↓ | fit s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ot = "—" if r.ot_ode is None else ("on" if r.ot_ode else "off")
        delta = "—" if r.delta_dist is None else f"{r.delta_dist[0]:+.3f} ± {r.delta_dist[1]:.3f}"
        wins = "—" if r.wins is None else f"{r.wins}/{r.n}"
        lines.append(f"| {r.strategy} | {ot} | {r.n} | {fmt(r.mean['dist'], r.std['dist'])} | {delta} | {wins} | "
                     f"{fmt(r.mean['accuracy'], r.std['accuracy'])} | {fmt(r.mean['sw2'], r.std['sw2'])} | "
                     f"{r.seconds:.1f} |")
    return "\n".join(lines)


def ablation_figure(ablation: Ablation, *, seed: int | None = None, links: int = 80) -> plt.Figure:
    """Restored test points against the truth for one seed: a row per OT-ODE setting, a column per strategy."""
    seed = next(iter(ablation.baselines)) if seed is None else seed
    records = [r for r in ablation.records if r.seed == seed]
    settings = list(dict.fromkeys(r.ot_ode for r in records))
    strategies = [s for s in dict.fromkeys(r.strategy for r in records) if s != "origin+denoise"]
    problem = ablation.test_problem(seed)
    cols = len(strategies) + 1
    fig, axes = plt.subplots(len(settings), cols, figsize=(2.6 * cols, 2.6 * len(settings)), squeeze=False,
                             sharex=True, sharey=True)
    for i, ot in enumerate(settings):
        base = ablation.baselines[seed]
        plot_restored_2d(axes[i, 0], problem.test_x, problem.test_y, color="C3", links=links,
                         title=f"degraded y, dist {base.dist:.3f}")
        axes[i, 0].set_ylabel(f"OT-ODE {'on' if ot else 'off'}")
        for j, name in enumerate(strategies, start=1):
            r = next(r for r in records if (r.strategy, r.ot_ode) == (name, ot))
            plot_restored_2d(axes[i, j], problem.test_x, r.restored, color=f"C{j - 1}", links=links,
                             title=f"{name}: dist {r.metrics.dist:.3f}, SW₂ {r.metrics.sw2:.3f}")
    fig.suptitle(f"blind 2D restoration, seed {seed} (lines: restored → true clean partner)")
    fig.tight_layout()
    return fig


def as_json(ablation: Ablation, rows: Sequence[SummaryRow]) -> dict:
    """Everything but the restored points, JSON-ready: config, problem, per-run metrics, summary."""
    nan_free = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    return {
        "config": dataclasses.asdict(ablation.config),
        "problem": ablation.problem,
        "seconds": ablation.seconds,
        "baselines": {str(k): v.as_dict() for k, v in ablation.baselines.items()},
        "runs": [{"strategy": r.strategy, "ot_ode": r.ot_ode, "seed": r.seed, **r.metrics.as_dict(),
                  "fit_seconds": r.seconds, "final_loss": nan_free(r.final_loss)} for r in ablation.records],
        "summary": [dataclasses.asdict(r) for r in rows],
    }


def write_report(ablation: Ablation, out: str | Path, *, command: str, seeds: int, wall_seconds: float) -> str:
    """Write results.md (the table), results.json and restored.png to ``out``; return the table.
    ``command``: the command line that ran it; ``seeds``: how many; ``wall_seconds``: the run's."""
    out = Path(out)
    rows = summarize(ablation)
    table = markdown_table(rows)
    (out / "results.md").write_text(
        f"# Pseudo-hashing on the blind 2D problem\n\n`{command}`\n\n{table}\n\n"
        f"mean ± std over {seeds} seed(s); Δdist is paired with Origin on the same seed and setting "
        f"(negative = closer to the truth than Origin). Wall time {wall_seconds:.0f} s.\n")
    report = as_json(ablation, rows) | {"command": command, "wall_seconds": wall_seconds}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    savefig(ablation_figure(ablation), out / "restored.png")
    return table
