"""The I2SB / P-I2SB training objective (I2SB Alg. 1, P-I2SB Alg. 1) as one loss function."""

from __future__ import annotations

import torch

from .bridge import sample_xt
from .parameterization import Model, as_parameterization
from .schedule import Schedule, TimeGrid


def sample_t(batch: int, *, grid: TimeGrid | None = None, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Training times: t ~ U(0, 1] (continuous), or uniform over the points of a stored grid."""
    if grid is not None:
        return grid.sample(batch, generator=generator).to(device=device, dtype=torch.float32)
    # 1 − U[0, 1) lies in (0, 1]: σ_t > 0, so the ε target (X_t − X0)/σ_t is always defined.
    return (1.0 - torch.rand(batch, generator=generator)).to(device)


def bridge_loss(
    model: Model,
    x0: torch.Tensor,
    x1: torch.Tensor,
    schedule: Schedule,
    *,
    cond=None,
    ot_ode: bool = False,
    t: torch.Tensor | None = None,
    grid: TimeGrid | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """One evaluation of the bridge regression loss on a batch of pairs.

    ``x0``: clean endpoints (after pseudo-hashing: x̂), ``x1``: degraded endpoints,
    both ``(B, ...)`` of one shape. Draws t (unless given), X_t ~ q(X_t | X0, X1)
    (its mean with ``ot_ode``), and regresses the parameterization's target — for the
    default ε-parameterization ‖ε(X_t, t) − (X_t − X0)/σ_t‖² (I2SB eq. 12).
    ``reduction``: "mean" (a scalar) or "none" (one value per sample).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be one of ['mean', 'none']; got {reduction!r}")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
    param = as_parameterization(model, schedule)
    if t is None:
        t = sample_t(x0.shape[0], grid=grid, generator=generator)
    t = t.to(x0.device)
    x_t = sample_xt(schedule, x0, x1, t, ot_ode=ot_ode, generator=generator)
    err = (param(x_t, t, cond) - param.target(x_t, x0, t)).float().square()
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample
