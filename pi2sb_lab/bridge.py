"""The Dirac-pair bridge: the Schrödinger bridge between one clean X0 and one degraded X1.

With f := 0 and both boundaries Dirac masses (I2SB Cor. 3.2, P-I2SB Thm. 4.1) the
bridge is Gaussian at every t with a closed form (I2SB Prop. 3.3, eq. 11):

    q(X_t | X0, X1) = N(μ_t, Σ_t I),
    μ_t = σ̄²_t/(σ̄²_t + σ²_t) X0 + σ²_t/(σ̄²_t + σ²_t) X1,
    Σ_t = σ²_t σ̄²_t/(σ̄²_t + σ²_t).

Everything here is elementwise in the data, so the same functions serve 2D points
``(B, D)`` and images ``(B, C, H, W)``. ``t`` is a scalar or a ``(B,)`` tensor.

Every function takes either a :class:`~pi2sb_lab.schedule.Schedule` (I2SB's bridge on
it, as always) or any :class:`~pi2sb_lab.families.BridgeFamily` (DDBM VP/VE, GOUB):
those have the same Gaussian form x_t = a_t X0 + b_t X1 + c_t ε with their own
coefficients. GOUB's ε target and step involve X1 (its SDE reverts to it): pass ``x1``.

``randn_like`` (from ``batch.py``) and ``StepPosterior`` (from ``walk.py``) are importable from here too.
"""

from __future__ import annotations

import torch

from ._checks import check_float_tensor, check_generator
from .batch import expand_like, randn_like
from .families import BridgeCoeffs, BridgeFamily, as_family
from .schedule import Schedule, Time, as_time
from .walk import StepPosterior

Bridge = Schedule | BridgeFamily  # a schedule is I2SB's bridge on it (families.as_family)


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    check_float_tensor(names[0], a)
    check_float_tensor(names[1], b)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")


def posterior(schedule: Bridge, t: Time) -> BridgeCoeffs:
    """Mean coefficients and variance of q(X_t | X0, X1) at time(s) ``t`` (I2SB Prop. 3.3, eq. 11)."""
    return _posterior(schedule, as_time(t))


def _posterior(schedule: Bridge, t: torch.Tensor) -> BridgeCoeffs:
    # Unchecked: ``t`` is already a tensor in [0, 1] (public callers validate once, see as_time).
    return as_family(schedule)._coeffs(t)


def sample_xt(
    schedule: Bridge,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: Time,
    *,
    ot_ode: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw X_t ~ q(X_t | X0, X1) (I2SB Alg. 1 line 4); with ``ot_ode`` return the mean μ_t (Prop. 3.4)."""
    _check_pair(x0, x1, ("x0", "x1"))
    check_generator("generator", generator)
    t = as_time(t)
    _check_time_shape(t, x0, "t")
    return _sample_xt(schedule, x0, x1, t, ot_ode=ot_ode, generator=generator)


def _check_time_shape(t: torch.Tensor, like: torch.Tensor, name: str) -> None:
    """``t`` is a scalar or one time per sample, ``(B,)`` for data ``(B, ...)`` (what ``expand_like`` needs)."""
    if t.ndim == 0:
        return
    batch = like.shape[0] if like.ndim else None
    if t.ndim != 1 or batch is None or t.shape[0] != batch:
        want = f"(batch,) = ({batch},)" if batch is not None else "() (the data is 0-d, with no batch axis)"
        raise ValueError(f"{name} must be a scalar or have shape {want}; got shape {tuple(t.shape)}")


def _sample_xt(schedule: Bridge, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, *, ot_ode: bool,
               generator: torch.Generator | None) -> torch.Tensor:
    c = _posterior(schedule, t)
    xt = expand_like(c.mu_x0, x0) * x0 + expand_like(c.mu_x1, x0) * x1
    if ot_ode:
        return xt
    return xt + expand_like(c.std, x0) * randn_like(x0, generator)


def eps_target(schedule: Bridge, x_t: torch.Tensor, x0: torch.Tensor, t: Time, *,
               x1: torch.Tensor | None = None) -> torch.Tensor:
    """The regression target (X_t − X0)/σ_t of the ε-network (I2SB eq. 12). Needs t > 0.

    For a family: (Y_t − α_t Y0)/σ_t, the noise of its unpinned SDE from X0, with
    Y = X − κ X1 (``x1`` needed for GOUB, κ = 1).
    """
    _check_pair(x_t, x0, ("x_t", "x0"))
    t = as_time(t)
    _check_time_shape(t, x_t, "t")
    if (t <= 0).any():
        raise ValueError("t must be > 0 for eps_target: σ_0 = 0 (the target is undefined at the clean end)")
    _check_x1(schedule, x1, x_t)
    return _eps_target(schedule, x_t, x0, t, x1=x1)


def _check_x1(schedule: Bridge, x1: torch.Tensor | None, like: torch.Tensor) -> None:
    family = as_family(schedule)
    if family.needs_x1:
        if x1 is None:
            raise ValueError(f"the {family.name} bridge reverts to X1: pass x1 (the degraded endpoint)")
        _check_pair(like, x1, ("x_t", "x1"))


def _eps_target(schedule: Bridge, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, *,
                x1: torch.Tensor | None = None) -> torch.Tensor:
    family = as_family(schedule)
    alpha, sigma = family._eps_scales(t)
    if family.name == "i2sb":  # α = 1: I2SB eq. 12 as it always was
        return (x_t - x0) / expand_like(sigma, x_t)
    if not family.needs_x1:
        return (x_t - expand_like(alpha, x_t) * x0) / expand_like(sigma, x_t)
    shift = family.kappa * x1
    return (x_t - shift - expand_like(alpha, x_t) * (x0 - shift)) / expand_like(sigma, x_t)


_SCALES: dict = {}
_SCALES_SIZE = 4096


def _eps_scales_like(family: BridgeFamily, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) expanded against ``like``. A sampler asks for the same few grid times over and over:
    for one time on the CPU (a grid point) they are computed once per family, time, dtype and device
    and kept (the same float64 arithmetic, then the same cast: the same bits)."""
    if t.ndim or t.device.type != "cpu":
        alpha, sigma = family._eps_scales(t)
        return expand_like(alpha, like), expand_like(sigma, like)
    key = (family, t.item(), t.dtype, like.dtype, like.device)
    hit = _SCALES.get(key)
    if hit is None:
        alpha, sigma = family._eps_scales(t)
        hit = _SCALES[key] = (expand_like(alpha, like), expand_like(sigma, like))
        if len(_SCALES) > _SCALES_SIZE:
            del _SCALES[next(iter(_SCALES))]
    return hit


def _eps_pred_x0(schedule: Bridge, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, *,
                 x1: torch.Tensor | None = None) -> torch.Tensor:
    """X0 from the ε-network's output, the inverse of :func:`_eps_target`."""
    family = as_family(schedule)
    alpha, sigma = _eps_scales_like(family, t, x_t)
    if family.name == "i2sb":
        return x_t - sigma * eps
    if not family.needs_x1:
        return (x_t - sigma * eps) / alpha
    if x1 is None:
        raise ValueError(f"the {family.name} bridge reverts to X1: its ε-parameterization needs x1")
    shift = family.kappa * x1
    return (x_t - shift - sigma * eps) / alpha + shift


def step_posterior(schedule: Bridge, x0: torch.Tensor, x_t: torch.Tensor, t: Time, s: Time, *,
                   x1: torch.Tensor | None = None) -> StepPosterior:
    """p(X_s | X0, X_t) for s < t: one DDPM step of the bridge (I2SB eq. 4, proof of Prop. 3.3).

    With α² = ∫ₛᵗ β = σ²_t − σ²_s:  mean = (α² X0 + σ²_s X_t)/σ²_t,  var = σ²_s α²/σ²_t.
    At s = 0 the step lands exactly on X0. Iterating it with the true X0 keeps the
    marginals equal to q(X_s | X0, X1) (the second half of Prop. 3.3). For a family:
    the same conditioning of its unpinned SDE (``families.BridgeFamily._markov``; GOUB needs ``x1``).
    """
    _check_pair(x0, x_t, ("x0", "x_t"))
    t, s = as_time(t, name="t"), as_time(s, name="s")
    _check_time_shape(t, x0, "t")
    _check_time_shape(s, x0, "s")
    if (s >= t).any():
        raise ValueError("step_posterior needs s < t (the sampler walks from t = 1 towards t = 0)")
    _check_x1(schedule, x1, x_t)
    # positional, and x1 only when given: _step_posterior keeps its (schedule, x0, x_t, t, s) call
    return _step_posterior(schedule, x0, x_t, t, s) if x1 is None else _step_posterior(schedule, x0, x_t, t, s, x1)


def _step_posterior(schedule: Bridge, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                    s: torch.Tensor, x1: torch.Tensor | None = None) -> StepPosterior:
    family = as_family(schedule)
    m = family._markov(t, s)
    mean = expand_like(m.x0, x0) * x0 + expand_like(m.xt, x0) * x_t
    if family.needs_x1:
        mean = mean + expand_like(m.x1, x0) * x1
    return StepPosterior(mean=mean, std=expand_like(m.var.sqrt(), x0))


def ot_velocity(schedule: Bridge, x_t: torch.Tensor, x0: torch.Tensor, t: Time) -> torch.Tensor:
    """The OT-ODE drift v_t = β_t/σ²_t (X_t − X0) of I2SB Prop. 3.4, eq. 13 (forward in t).

    Integrated from X0 … or, as a sampler does, backwards from X1 at t = 1, it
    traces the posterior mean μ_t. Needs t > 0.
    """
    _check_pair(x_t, x0, ("x_t", "x0"))
    t = as_time(t)
    _check_time_shape(t, x_t, "t")
    if (t <= 0).any():
        raise ValueError("t must be > 0 for ot_velocity: β/σ² is singular at the clean end")
    family = as_family(schedule)
    if family.name != "i2sb":
        raise ValueError(f"ot_velocity is I2SB's OT-ODE (Prop. 3.4); for the {family.name} bridge use ode_velocity")
    schedule = family.schedule
    return expand_like(schedule._beta(t) / schedule._sigma2(t), x_t) * (x_t - x0)


def ode_velocity(schedule: Bridge, x_t: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, t: Time) -> torch.Tensor:
    """The probability-flow ODE of the bridge pinned at (X0, X1), forward in t, for any family.

    v = a'_t X0 + b'_t X1 + (c'_t/c_t)(X_t − a_t X0 − b_t X1): the one velocity, affine in X_t,
    that carries N(a_t X0 + b_t X1, c²_t) to itself in time; with X0 replaced by a network's
    estimate it is the ODE that DDBM's and DBIM's deterministic samplers discretize.
    Needs 0 < t < 1 (c_t = 0 at both ends).
    """
    _check_pair(x_t, x0, ("x_t", "x0"))
    _check_pair(x_t, x1, ("x_t", "x1"))
    t = as_time(t)
    _check_time_shape(t, x_t, "t")
    if ((t <= 0) | (t >= 1)).any():
        raise ValueError("t must lie in (0, 1) for ode_velocity: c_t = 0 at both ends")
    family = as_family(schedule)
    c, d = family._coeffs(t), family._ode(t)
    e = lambda v: expand_like(v, x_t)  # noqa: E731
    mean = e(c.mu_x0) * x0 + e(c.mu_x1) * x1
    return e(d.da) * x0 + e(d.db) * x1 + e(d.dlog_c) * (x_t - mean)
