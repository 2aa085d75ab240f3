"""Matplotlib figures shared by the notebooks and the toy/full drivers."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def savefig(fig: plt.Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """One image ``(C, H, W)`` in [-1, 1] → ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1] for imshow."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    return x[0] if x.shape[0] == 1 else np.transpose(x[:3], (1, 2, 0))


def image_grid(rows: Sequence[torch.Tensor], row_titles: Sequence[str], *, max_cols: int = 8,
               size: float = 1.1, title: str | None = None) -> plt.Figure:
    """A grid with one row per batch ``(N, C, H, W)`` (e.g. LQ / each variant / HQ), first ``max_cols`` images."""
    if len(rows) != len(row_titles):
        raise ValueError(f"rows and row_titles must have the same length; got {len(rows)} and {len(row_titles)}")
    cols = min(max_cols, min(r.shape[0] for r in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(size * cols + 1.2, size * len(rows)), squeeze=False)
    for i, (batch, name) in enumerate(zip(rows, row_titles)):
        for j in range(cols):
            ax = axes[i, j]
            ax.imshow(to_numpy_image(batch[j]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_band(ax: plt.Axes, t: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, color: str = "C0",
              label: str | None = None, k: float = 1.0) -> None:
    """A mean line with a ±k·std band over time (t on the x-axis, clean t=0 on the left)."""
    t, mean, std = (np.asarray(v.detach().cpu()) for v in (t, mean, std))
    ax.plot(t, mean, color=color, lw=2, label=label)
    ax.fill_between(t, mean - k * std, mean + k * std, color=color, alpha=0.2)


def plot_2d_paths(ax: plt.Axes, trajectory: torch.Tensor, *, color: str = "C0", alpha: float = 0.4,
                  lw: float = 0.8, max_paths: int = 200, endpoints: bool = True) -> None:
    """Paths of 2D points: ``trajectory`` is ``(K, N, 2)`` ordered from t = 1 (degraded) to t = 0 (clean)."""
    tr = np.asarray(trajectory.detach().cpu())[:, :max_paths]
    for n in range(tr.shape[1]):
        ax.plot(tr[:, n, 0], tr[:, n, 1], color=color, alpha=alpha, lw=lw)
    if endpoints:
        ax.scatter(tr[0, :, 0], tr[0, :, 1], s=10, marker="x", color="k", alpha=0.7, label="start (t=1)")
        ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=10, color=color, alpha=0.9, label="end (t=0)")
    ax.set_aspect("equal")


def plot_restored_2d(ax: plt.Axes, clean: torch.Tensor, restored: torch.Tensor, *, color: str = "C0",
                     links: int = 80, title: str | None = None) -> None:
    """Restored 2D points over the clean truth (grey), with a line from each of the first ``links`` to its true partner.

    ``clean`` and ``restored`` are ``(N, 2)`` with row ``n`` restored from the partner of ``clean[n]``.
    """
    if clean.shape != restored.shape:
        raise ValueError(f"clean and restored must have the same shape; got {tuple(clean.shape)} and "
                         f"{tuple(restored.shape)}")
    c, r = (np.asarray(v.detach().double().cpu()) for v in (clean, restored))
    ax.scatter(c[:, 0], c[:, 1], s=4, color="0.7", label="clean truth")
    for n in range(min(links, len(c))):
        ax.plot([r[n, 0], c[n, 0]], [r[n, 1], c[n, 1]], color="k", lw=0.4, alpha=0.5)
    ax.scatter(r[:, 0], r[:, 1], s=4, color=color, alpha=0.7, label="restored")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)


# ----------------------------------------------------------------------------- widget helpers
# A slider only takes the values low + k·step: the browser snaps anything else to the nearest one
# (a log slider over 10^-3 … 10^1 in steps of 0.1 shows β_max = 0.3 as 10^-0.5 = 0.316). The
# helpers below shift the grid so that it passes through the parameter's own value and widen the
# range so that it contains it: a notebook's sliders start exactly at its parameters.

def grid_range(value: float, low: float, high: float, step: float) -> tuple[float, float]:
    """The widest ``[lo, hi]`` inside ``[low, high]`` whose grid ``lo + k·step`` holds ``value``.

    A ``value`` outside ``[low, high]`` becomes that end of the range, so the slider can always show it.
    """
    for name, v in (("value", value), ("low", low), ("high", high), ("step", step)):
        if not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number; got {v!r}")
    if step <= 0:
        raise ValueError(f"step must be > 0; got {step!r}")
    if low > high:
        raise ValueError(f"low must be <= high; got low={low!r}, high={high!r}")
    # the 1e-9 keeps an end that lies on the grid up to rounding (0.3 + 7·0.1 vs 1.0) inside the range
    below = max(0, int(np.floor((value - low) / step + 1e-9)))
    above = max(0, int(np.floor((high - value) / step + 1e-9)))
    return value - below * step, value + above * step


def log_slider(value: float, low: float, high: float, *, step: float = 0.1, base: float = 10.0, **kwargs):
    """An ipywidgets ``FloatLogSlider`` over ``[low, high]`` (values, not exponents) that starts exactly at ``value``."""
    import ipywidgets as widgets

    if not (value > 0 and low > 0 and high > 0):
        raise ValueError(f"a log slider needs positive values; got value={value!r}, low={low!r}, high={high!r}")
    log = lambda v: float(np.log(v) / np.log(base))  # noqa: E731 - the slider's own exponent
    lo, hi = grid_range(log(value), log(low), log(high), step)
    return widgets.FloatLogSlider(value=value, base=base, min=lo, max=hi, step=step, **kwargs)


def linear_slider(value: float, low: float, high: float, *, step: float, **kwargs):
    """An ipywidgets ``FloatSlider`` over ``[low, high]`` whose step grid passes through ``value``."""
    import ipywidgets as widgets

    lo, hi = grid_range(float(value), low, high, step)
    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, **kwargs)


def int_slider(value: int, low: int, high: int, **kwargs):
    """An ipywidgets ``IntSlider`` over ``[low, high]``, widened to contain ``value``."""
    import ipywidgets as widgets

    return widgets.IntSlider(value=value, min=min(low, value), max=max(high, value), **kwargs)
