"""The I2SB / P-I2SB training objective (I2SB Alg. 1, P-I2SB Alg. 1): one loss, and its trainer-facing object.

``bridge_loss`` is the loss on one batch of pairs. ``BridgeObjective`` is what
``train.training_loop`` calls each micro-batch: it draws the training times and
evaluates the loss, so the loop itself knows nothing about bridges (a VP
diffusion or a supervised regression plugs in the same way; see
``train.Objective``).
"""

from __future__ import annotations

import torch

from ._checks import check_float_tensor, check_generator
from .bridge import _check_time_shape, _sample_xt
from .parameterization import Model, as_parameterization
from .bridge import Bridge
from .schedule import TimeGrid, as_time, time_grid


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
    schedule: Bridge,
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
    check_float_tensor("x0", x0)
    check_float_tensor("x1", x1)
    check_generator("generator", generator)
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if x0.ndim == 0:
        raise ValueError("x0 and x1 must be batches (B, ...); got 0-d tensors")
    param = as_parameterization(model, schedule)
    if t is None:
        t = sample_t(x0.shape[0], grid=grid, generator=generator)  # in (0, 1] by construction
    else:
        t = as_time(t)  # checked once here; everything below trusts it
        _check_time_shape(t, x0, "t")
        if bool((t <= 0).any()):
            raise ValueError("t must be > 0 for the bridge loss: σ_0 = 0 at the clean end")
    per_sample = _bridge_loss(param, x0, x1, t.to(x0.device), cond=cond, ot_ode=ot_ode, generator=generator)
    return per_sample.mean() if reduction == "mean" else per_sample


def _bridge_loss(param, x0, x1, t, *, cond, ot_ode, generator) -> torch.Tensor:
    # Unchecked: t is a (B,) tensor in (0, 1] on x0's device. Per-sample losses (B,).
    x_t = _sample_xt(param.schedule, x0, x1, t, ot_ode=ot_ode, generator=generator)
    x1_kw = {"x1": x1} if param.needs_x1 else {}  # GOUB's ε target involves X1
    out, target = param._forward(x_t, t, cond), param._target(x_t, x0, t, **x1_kw)
    if out.shape != target.shape:  # broadcasting (B, 1) against (B, D) would train on a wrong loss, silently
        raise ValueError(f"the model's output has shape {tuple(out.shape)}, but its target (shaped like x_t) "
                         f"has {tuple(target.shape)}: model(x_t, t, cond) must return a tensor shaped like x_t")
    err = (out - target).float().square()
    return err.reshape(err.shape[0], -1).mean(dim=1)


class BridgeObjective:
    """I2SB Alg. 1 as ``training_loop``'s objective: ``loss(model, x0, x1, cond, …)`` on hashed pairs.

    ``schedule``: the bridge's β(t); ``ot_ode``: train on the bridge mean (Prop. 3.4);
    ``grid``/``grid_nfe``: draw t from a stored grid's points instead of U(0, 1].
    ``prepare(model)`` wraps a bare backbone as an ε-parameterization.
    """

    def __init__(self, schedule: Bridge, *, ot_ode: bool = False, grid: str | None = None,
                 grid_nfe: int = 1000) -> None:
        self.schedule, self.ot_ode = schedule, ot_ode
        self.grid = None if grid is None else time_grid(grid_nfe, grid)

    def prepare(self, model: Model):
        return as_parameterization(model, self.schedule)

    def loss(self, model, x0: torch.Tensor, x1: torch.Tensor, cond=None, *, generator: torch.Generator,
             time_generator: torch.Generator) -> torch.Tensor:
        if x0.shape != x1.shape:
            raise ValueError(f"pair_fn must give x0 and x1 of one shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
        t = sample_t(x0.shape[0], grid=self.grid, generator=time_generator, device=x0.device)
        return _bridge_loss(model, x0, x1, t, cond=cond, ot_ode=self.ot_ode, generator=generator).mean()

    def describe(self) -> dict:
        return {"kind": "bridge", "schedule": repr(self.schedule), "ot_ode": self.ot_ode,
                "grid": None if self.grid is None else [self.grid.kind, self.grid.nfe]}
