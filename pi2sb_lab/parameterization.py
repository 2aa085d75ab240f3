"""What a network's output means: ε, x0, or I2SB's Karras-style preconditioning.

A parameterization wraps any backbone ``net(x_t, t, cond=None)`` and itself obeys
the same interface (its ``forward`` is the raw network output). It adds
``target(x_t, x0, t)``, the regression target of the loss, and
``pred_x0(x_t, t, cond)``, the clean estimate the sampler needs (I2SB Alg. 2 line 3).
The backbone never knows which one it is inside.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ._checks import check_real
from .batch import expand_like
from .bridge import Bridge, _eps_pred_x0, _eps_target, _posterior, eps_target
from .families import as_family
from .schedule import Time, as_time

Model = Callable[..., torch.Tensor]


class Parameterization(nn.Module):
    """Base class. Subclasses define the unchecked ``_target`` and ``_pred_x0``.

    The public ``forward`` / ``target`` / ``pred_x0`` check ``t`` once (``as_time``) and
    call the underscored versions, which the sampler and the loss call directly on
    times they have already checked: one validation per call, not three.
    """

    name = "base"

    def __init__(self, backbone: Model, schedule: Bridge) -> None:
        super().__init__()
        self.backbone = backbone
        self.schedule = schedule

    def _net(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        out = self.backbone(x_t, _batch_time(t, x_t), cond)
        if not torch.is_tensor(out) or out.shape != x_t.shape:  # a shape, not a value: no host sync
            # (B, 1) against (B, D) would broadcast into a wrong loss or sample, silently
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"the network's output has shape {got}, but x_t has {tuple(x_t.shape)}: "
                             "net(x_t, t, cond) must return a tensor shaped like x_t")
        return out

    def _forward(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        return self._net(x_t, t, cond)

    def forward(self, x_t: torch.Tensor, t: Time, cond=None) -> torch.Tensor:
        """The raw network output at (x_t, t): what the loss regresses onto ``target``."""
        return self._forward(x_t, as_time(t), cond)

    def target(self, x_t: torch.Tensor, x0: torch.Tensor, t: Time, *, x1: torch.Tensor | None = None) -> torch.Tensor:
        """The regression target of the network output, given the true clean ``x0`` (and ``x1`` for GOUB's ε)."""
        return self._target(x_t, x0, as_time(t), **_x1_kw(x1))

    def pred_x0(self, x_t: torch.Tensor, t: Time, cond=None, *, x1: torch.Tensor | None = None) -> torch.Tensor:
        """The clean estimate X̂0(x_t, t) (I2SB Alg. 2 line 3); ``x1`` only for a family that needs it (GOUB's ε)."""
        return self._pred_x0(x_t, as_time(t), cond, **_x1_kw(x1))

    @property
    def needs_x1(self) -> bool:
        """Whether ``_target`` / ``_pred_x0`` need ``x1=`` (the ε-parameterization of a bridge reverting to X1)."""
        return False

    def _target(self, x_t, x0, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def _pred_x0(self, x_t, t, cond=None):  # pragma: no cover - abstract
        raise NotImplementedError


def _x1_kw(x1) -> dict:
    # Only a parameterization that needs X1 takes it: the others keep their (x_t, t, cond) signature.
    return {} if x1 is None else {"x1": x1}


def _batch_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Continuous time as a ``(B,)`` tensor on the data's device, as every backbone receives it.

    float32 (float64 for float64 data, the theory checks) — never the data's low
    precision: in bf16 neighbouring times 4e-3 apart would round to one value.
    """
    t = t.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


class EpsParam(Parameterization):
    """ε-prediction (I2SB eq. 12, the default): target (X_t − X0)/σ_t, X0 = X_t − σ_t ε.

    For a bridge family: the noise of its unpinned SDE from X0, (Y_t − α_t Y0)/σ_t with
    Y = X − κ X1 (GOUB, κ = 1: then ``x1`` is needed, and the sampler passes it)."""

    name = "eps"

    def target(self, x_t, x0, t, *, x1=None):
        return eps_target(self.schedule, x_t, x0, t, x1=x1)  # checks t > 0: σ_0 = 0 leaves it undefined

    @property
    def needs_x1(self) -> bool:
        return as_family(self.schedule).needs_x1

    def _target(self, x_t, x0, t, x1=None):
        return _eps_target(self.schedule, x_t, x0, t, x1=x1)

    def _pred_x0(self, x_t, t, cond=None, x1=None):
        # I2SB: X0 = X_t − σ_t ε; a family: its inverse of the ε target (bridge._eps_pred_x0)
        return _eps_pred_x0(self.schedule, x_t, self._net(x_t, t, cond), t, x1=x1)


class X0Param(Parameterization):
    """Direct x0-prediction: the network output is the clean estimate itself."""

    name = "x0"

    def _target(self, x_t, x0, t):
        return x0

    def _pred_x0(self, x_t, t, cond=None):
        return self._net(x_t, t, cond)


class KarrasParam(Parameterization):
    """Karras-style preconditioning re-derived for the bridge (I2SB App. C.3, eq. 22–23).

    With X_t = a X0 + b X1 + √Σ_t ε (Prop. 3.3) and per-element data statistics
    V0 = Var[X0], V1 = Var[X1], C01 = Cov[X0, X1]:

        Var[X_t]     = a² V0 + b² V1 + 2ab C01 + Σ_t     (Σ_t = 0 for OT-ODE training)
        Cov[X0, X_t] = a V0 + b C01
        c_in = 1/√Var[X_t],  c_skip = Cov/Var[X_t],  c_out = √(V0 − Cov²/Var[X_t])

    The network sees c_in X_t and is trained on (c_skip X_t − X0)/c_out (eq. 22);
    then X0 = c_skip X_t − c_out · out. Use :meth:`from_data` to estimate the statistics.
    The coefficients are computed on the data's device (float64 there, except on
    MPS, which has none), once per call.
    """

    name = "karras"

    def __init__(self, backbone: Model, schedule: Bridge, *, var_x0: float = 0.25, var_x1: float = 0.25,
                 cov_x0x1: float = 0.2, ot_ode: bool = False) -> None:
        super().__init__(backbone, schedule)
        # Finite first: NaN statistics fail every comparison below and would pass a `<= 0` test.
        var_x0 = check_real("var_x0", var_x0, low=0, low_open=True)
        var_x1 = check_real("var_x1", var_x1, low=0)
        cov_x0x1 = check_real("cov_x0x1", cov_x0x1)
        if not cov_x0x1**2 <= var_x0 * var_x1 * (1 + 1e-9):
            raise ValueError(
                f"need var_x0 > 0, var_x1 >= 0 and cov_x0x1² <= var_x0·var_x1; got {var_x0}, {var_x1}, {cov_x0x1}"
            )
        self.register_buffer("stats", torch.tensor([var_x0, var_x1, cov_x0x1], dtype=torch.float64))
        self.ot_ode = ot_ode

    @classmethod
    def from_data(cls, backbone: Model, schedule: Bridge, x0: torch.Tensor, x1: torch.Tensor, *,
                  ot_ode: bool = False) -> "KarrasParam":
        """Estimate V0, V1 and C01 (averaged over elements) from a batch of pairs (eq. 23 needs them)."""
        if x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must have the same shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
        a, b = x0.double(), x1.double()
        a, b = a - a.mean(0, keepdim=True), b - b.mean(0, keepdim=True)
        v0, v1, c01 = (a * a).mean().item(), (b * b).mean().item(), (a * b).mean().item()
        return cls(backbone, schedule, var_x0=v0, var_x1=v1, cov_x0x1=c01, ot_ode=ot_ode)

    def coefficients(self, t: Time) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_in, c_skip, c_out) at time(s) t, in float64."""
        return self._coefficients(as_time(t))

    def _coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stats = self.stats
        dtype = torch.float32 if stats.device.type == "mps" else torch.float64
        v0, v1, c01 = stats.to(dtype)
        c = _posterior(self.schedule, t.to(device=stats.device, dtype=dtype))
        var_xt = c.mu_x0**2 * v0 + c.mu_x1**2 * v1 + 2 * c.mu_x0 * c.mu_x1 * c01 + (0 if self.ot_ode else c.var)
        cov = c.mu_x0 * v0 + c.mu_x1 * c01
        c_out = (v0 - cov**2 / var_xt).clamp_min(1e-12).sqrt()
        return var_xt.rsqrt(), cov / var_xt, c_out

    def _forward(self, x_t, t, cond=None):
        c_in, _, _ = self._coefficients(t)
        return self._net(expand_like(c_in, x_t) * x_t, t, cond)

    def _target(self, x_t, x0, t):
        _, c_skip, c_out = self._coefficients(t)
        return (expand_like(c_skip, x_t) * x_t - x0) / expand_like(c_out, x_t)

    def _pred_x0(self, x_t, t, cond=None):
        c_in, c_skip, c_out = self._coefficients(t)  # once, not once more inside forward
        out = self._net(expand_like(c_in, x_t) * x_t, t, cond)
        return expand_like(c_skip, x_t) * x_t - expand_like(c_out, x_t) * out


PARAMETERIZATIONS: dict[str, type[Parameterization]] = {"eps": EpsParam, "x0": X0Param, "karras": KarrasParam}


def parameterize(name: str, backbone: Model, schedule: Bridge, **kwargs) -> Parameterization:
    """Wrap ``backbone`` in the parameterization called ``name`` ("eps", "x0" or "karras")."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {sorted(PARAMETERIZATIONS)}; got {name!r}")
    return PARAMETERIZATIONS[name](backbone, schedule, **kwargs)


def as_parameterization(model: Model, schedule: Bridge) -> Parameterization:
    """A parameterization as given, or a bare network read as ε-prediction (the I2SB default)."""
    if isinstance(model, Parameterization):
        if as_family(model.schedule) != as_family(schedule):
            raise ValueError(f"the model was wrapped for {model.schedule!r} but is used with {schedule!r}")
        return model
    if not callable(model):
        raise TypeError(f"model must be a network model(x_t, t, cond) or a Parameterization; got {model!r}")
    return EpsParam(model, schedule)
