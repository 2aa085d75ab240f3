"""I2SB generation (I2SB Alg. 2): DDPM posterior steps from the degraded X1 at t = 1 to t = 0."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import torch

from ._checks import check_float_tensor, check_generator, check_int
from ._checks import check_finite
from .bridge import _step_posterior, randn_like
from .parameterization import Model, as_parameterization
from .schedule import Schedule, TimeGrid, time_grid


@dataclass(frozen=True)
class SampleResult:
    """What :func:`sample` returns.

    ``x0``: the restored endpoint, shaped like ``x1``.
    ``trajectory``: ``(K, *x1.shape)`` states X_{t_n}, from t = 1 down to t = 0: by default
    (``trajectory_stride=0``) only the two endpoints, K = 2; with a stride every
    ``trajectory_stride``-th step too, the first and last always kept.
    ``pred_x0``: ``(K − 1, *x1.shape)`` the network's clean estimate made at each kept
    state but the last. ``times``: ``(K,)`` the grid times of ``trajectory``.
    """

    x0: torch.Tensor
    trajectory: torch.Tensor
    pred_x0: torch.Tensor
    times: torch.Tensor


@torch.no_grad()
def sample(
    model: Model,
    x1: torch.Tensor,
    schedule: Schedule,
    *,
    nfe: int,
    grid: str | TimeGrid = "quadratic",
    ot_ode: bool = False,
    cond=None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    callback: Callable[..., None] | None = None,
    trajectory_stride: int = 0,
) -> SampleResult:
    """Restore ``x1`` by walking the bridge from t = 1 to t = 0 in ``nfe`` network calls.

    ``model``: a :class:`~pi2sb_lab.parameterization.Parameterization` or a bare network
    ``net(x_t, t, cond)`` read as ε-prediction. ``grid``: "uniform", "quadratic" or a
    :class:`TimeGrid` (then ``nfe`` must match it). ``ot_ode``: drop the injected noise,
    following the OT-ODE (I2SB Prop. 3.4). ``callback(t=, x_t=, pred_x0=)`` is called at
    every step with the current state and the network's clean estimate: the way to watch
    (or record) the steps. ``trajectory_stride``: also keep every n-th state in the
    result (0, the default, keeps only the endpoints: at 512² and NFE 1000 keeping every
    state would take gigabytes). ``generator``: one for the whole batch, or one per sample
    (a sequence of ``len(x1)``: each sample's noise then does not depend on its batch).
    """
    check_finite("x1", x1)
    check_float_tensor("x1", x1)
    if isinstance(generator, (list, tuple)):
        if len(generator) != x1.shape[0]:
            raise ValueError(f"generator: one per sample needs {x1.shape[0]} generators (x1's batch); "
                             f"got {len(generator)}")
        for i, g in enumerate(generator):
            check_generator(f"generator[{i}]", g)
    else:
        check_generator("generator", generator)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(t=, x_t=, pred_x0=) or None; got {callback!r}")
    param = as_parameterization(model, schedule)
    if isinstance(grid, TimeGrid):
        if grid.nfe != nfe:
            raise ValueError(f"nfe={nfe} disagrees with the given grid of {grid.nfe} steps")
        steps = grid
    else:
        steps = time_grid(nfe, grid)
    trajectory_stride = check_int("trajectory_stride", trajectory_stride, low=0,
                                  why=" (0 keeps only the endpoints)")

    x = x1
    keep = lambda n: trajectory_stride > 0 and n % trajectory_stride == 0  # noqa: E731
    trajectory, preds, times = [x1], [], [steps.t[-1]]
    for n, (t, s) in enumerate(steps.steps()):
        # The grid is ours and already checked: the unchecked internals run here.
        pred_x0 = param._pred_x0(x, t, cond)                          # Alg. 2 line 3
        if callback is not None:
            callback(t=t, x_t=x, pred_x0=pred_x0)
        mean, std = _step_posterior(schedule, pred_x0, x, t, s)       # Alg. 2 line 4, DDPM (4)
        if n > 0 and keep(n):
            trajectory.append(x)
            times.append(t)
        if n == 0 or keep(n):
            preds.append(pred_x0)
        x = mean if (ot_ode or s == 0) else mean + std * randn_like(x, generator)
    trajectory.append(x)
    times.append(steps.t[0])
    return SampleResult(x0=x, trajectory=torch.stack(trajectory), pred_x0=torch.stack(preds),
                        times=torch.stack(times))
