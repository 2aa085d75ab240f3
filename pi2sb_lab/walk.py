"""The walk every sampler of the project takes over a stored grid of times, its step type and its result.

A walk visits the grid in pairs ``(t, s)`` — from t = 1 down to t = 0 for a sampler, upwards
for DDIM inversion — and does the same four things at each (I2SB Alg. 2, DDPM, DDIM):

    x̂0, extra = predict(x_t, t)                    the network's clean estimate (Alg. 2 line 3)
    callback(t=, x_t=, pred_x0=)                    a notebook watching the step
    mean, std = step(n, t, s, x_t, x̂0, extra)       the step's Gaussian N(mean, std²·I) at s (line 4)
    x_s = mean + std·z, or x_s = mean               a draw only where the step injects noise

The bridge sampler (:func:`pi2sb_lab.sampler.sample`, cached coefficients of any bridge family)
and the VP walks (:mod:`pi2sb_lab.diffusion`: DDPM, DDIM(η), DDIM inversion, ODEdit's way back)
differ only in ``predict`` and ``step``; what a walk keeps (the endpoints, every
``trajectory_stride``-th state and the estimates made there) and returns (:class:`SampleResult`)
is this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

__all__ = ["StepPosterior", "SampleResult", "walk"]


class StepPosterior(NamedTuple):
    """One step's Gaussian N(mean, std²·I) at the next time, e.g. p(X_s | X0, X_t); unpacks as ``mean, std``."""

    mean: torch.Tensor
    std: torch.Tensor


@dataclass(frozen=True)
class SampleResult:
    """What a walk returns (:func:`pi2sb_lab.sampler.sample`, and the VP walks of :mod:`pi2sb_lab.diffusion`).

    ``x0``: where the walk ended, shaped like its start: the restored (or sampled) endpoint at t = 0;
    for :func:`~pi2sb_lab.diffusion.ddim_invert`, which walks up, the latent at its end time.
    ``trajectory``: ``(K, *x0.shape)`` states, from the start of the walk to its end: by default
    (``trajectory_stride=0``) only the two endpoints, K = 2; with a stride every
    ``trajectory_stride``-th step too, the first and last always kept.
    ``pred_x0``: ``(K − 1, *x0.shape)`` the network's clean estimate made at each kept state but the last.
    ``times``: the grid times of ``trajectory``, ``(K,)`` (``(K, B)`` for per-sample times).
    ``nfe``: network evaluations made (``None`` where whoever built the result did not say).
    """

    x0: torch.Tensor
    trajectory: torch.Tensor
    pred_x0: torch.Tensor
    times: torch.Tensor
    nfe: int | None = None


Predict = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]]
Step = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Any], StepPosterior]


def walk(x: torch.Tensor, steps: Iterable[tuple[torch.Tensor, torch.Tensor]], *, predict: Predict, step: Step,
         draws: Sequence[bool], noise: Callable[[torch.Tensor], torch.Tensor] | None,
         callback: Callable[..., None] | None = None, trajectory_stride: int = 0,
         refine: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> SampleResult:
    """Walk from ``x`` over ``steps``, pairs ``(t, s)`` (at least one), unchecked: the callers check.

    ``predict(x_t, t) -> (x̂0, extra)``: the clean estimate and whatever else the step reads (ε̂ for the
    VP steps). ``step(n, t, s, x_t, x̂0, extra) -> StepPosterior`` for step n = 0, 1, …; where
    ``draws[n]`` the next state is ``mean + std · noise(x_t)``, else ``mean`` (``noise`` may be None
    where nothing is drawn). ``refine(n, x_t)``,
    if given, moves the state before it is predicted (ODEdit's Langevin updates).
    """
    keep = lambda n: trajectory_stride > 0 and n % trajectory_stride == 0  # noqa: E731
    trajectory, preds, times = [x], [], []
    for n, (t, s) in enumerate(steps):
        if refine is not None:
            x = refine(n, x)
        pred_x0, extra = predict(x, t)
        if callback is not None:
            callback(t=t, x_t=x, pred_x0=pred_x0)
        mean, std = step(n, t, s, x, pred_x0, extra)
        if n == 0:
            times.append(t)
            preds.append(pred_x0)
        elif keep(n):
            trajectory.append(x)
            times.append(t)
            preds.append(pred_x0)
        x = mean + std * noise(x) if draws[n] else mean
    trajectory.append(x)
    times.append(s)
    return SampleResult(x0=x, trajectory=torch.stack(trajectory), pred_x0=torch.stack(preds),
                        times=torch.stack(times), nfe=n + 1)
