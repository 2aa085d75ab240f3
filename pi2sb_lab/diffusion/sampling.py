"""Sampling a VP diffusion: DDPM ancestral steps, DDIM(η), DDIM inversion (Ho et al. 2020; Song et al. 2021).

The backbone is read as ε-prediction: ``ε̂ = model(x_t, t, cond)`` and
``x̂0 = (x_t − σ_t ε̂)/α_t`` (DDPM eq. 11 rearranged; ODEdit eq. 9 gives the score
``−ε̂/σ_t``). Every walk runs on one stored grid of times, ``t_start · u_n`` with
``u`` from ``schedule.time_grid(nfe, grid)`` (uniform or quadratic, as the I2SB
sampler; I2SB App. C.1 ran its Palette on the same quadratic grid), and follows
``sampler.sample``'s conventions: a seeded ``generator``, ``nfe`` network calls,
``callback(t=, x_t=, pred_x0=)`` at every call, endpoints kept unless
``trajectory_stride`` asks for more, the same result (:class:`~pi2sb_lab.walk.SampleResult`):
every walk here is :func:`pi2sb_lab.walk.walk`, the I2SB sampler's loop, with the steps below.

One step from ``t`` down to ``s < t``, with α_{t|s} = α_t/α_s and σ²_{t|s} = 1 − ᾱ_t/ᾱ_s:

* **DDPM** (ancestral): ``x_s ~ q(x_s | x_t, x̂0)``, the Gaussian posterior with
  mean ``(α_{t|s} σ_s²/σ_t²) x_t + (α_s σ²_{t|s}/σ_t²) x̂0`` and variance
  ``σ²_{t|s} σ_s²/σ_t²`` (DDPM eq. 6–7 in continuous time).
* **DDIM(η)**: ``x_s = α_s x̂0 + √(σ_s² − c²) ε̂ + c z`` with ``c = η √(σ²_{t|s} σ_s²/σ_t²)``
  (DDIM eq. 12 and 16). η = 0 is the deterministic probability-flow solver of
  ODEdit eq. 8; η = 1 is DDPM's step again (same mean and variance; a test checks it).
* **DDIM inversion**: the same deterministic step run upwards, ``x_t = α_t x̂0(x_s, s) +
  σ_t ε̂(x_s, s)`` (ODEdit's ODE_SOLVER_forward).

Times may be a scalar per step or one per sample, ``(B,)`` — the Noise-I2SB
denoiser enters each sample's chain at its own level.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..batch import expand_like, randn_like
from ..schedule import GRIDS, time_grid
from ..walk import SampleResult, StepPosterior, walk
from .schedule import VPSchedule

__all__ = ["SampleResult", "StepPosterior", "ddpm_posterior", "ddim_step", "predict", "prior_noise", "ddpm",
           "ddim", "ddim_invert", "walk_times"]

Callback = Callable[..., None]


# --------------------------------------------------------------------------- one step


def ddpm_posterior(schedule: VPSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
                   s: torch.Tensor) -> StepPosterior:
    """q(x_s | x_t, x0) for s < t (DDPM eq. 6–7 in continuous time); at s = 0 it is the point x0."""
    alpha_t, alpha_s = schedule._alpha(t), schedule._alpha(s)
    sigma2_t, sigma2_s = schedule._sigma2(t), schedule._sigma2(s)
    var_ts = schedule._transition_var(t, s)                        # σ²_{t|s}
    coef_xt = (alpha_t / alpha_s) * sigma2_s / sigma2_t
    coef_x0 = alpha_s * var_ts / sigma2_t
    mean = expand_like(coef_xt, x_t) * x_t + expand_like(coef_x0, x_t) * x0
    return StepPosterior(mean, expand_like((var_ts * sigma2_s / sigma2_t).sqrt(), x_t))


def ddim_step(schedule: VPSchedule, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
              eta: float) -> StepPosterior:
    """DDIM eq. 12: mean α_s x̂0 + √(σ_s² − c²) ε̂ and std c = η·√(σ²_{t|s} σ_s²/σ_t²)."""
    sigma2_s = schedule._sigma2(s)
    c2 = eta * eta * schedule._transition_var(t, s) * sigma2_s / schedule._sigma2(t)
    mean = expand_like(schedule._alpha(s), x0) * x0 + expand_like((sigma2_s - c2).clamp_min(0).sqrt(), x0) * eps
    return StepPosterior(mean, expand_like(c2.sqrt(), x0))


def _net_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # (B,) on the data's device; float32 (float64 for float64 data), never the data's low precision.
    t = t.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def predict(model, schedule: VPSchedule, x_t: torch.Tensor, t: torch.Tensor, cond=None, *,
            clip_x0: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂0) at (x_t, t): ε̂ = model(x_t, t, cond), x̂0 = (x_t − σ_t ε̂)/α_t.

    ``clip_x0``: clamp x̂0 to [−c, c] (images live in [−1, 1]) and re-derive ε̂ from it,
    so that DDIM stays consistent; ``None`` (the default, and the exact tests') leaves both.
    """
    eps = model(x_t, _net_time(t, x_t), cond)
    if not torch.is_tensor(eps) or eps.shape != x_t.shape:
        raise ValueError(f"the model must return ε shaped like x_t {tuple(x_t.shape)}; got "
                         f"{tuple(eps.shape) if torch.is_tensor(eps) else type(eps).__name__}")
    alpha, sigma = expand_like(schedule._alpha(t), x_t), expand_like(schedule._sigma(t), x_t)
    x0 = (x_t - sigma * eps) / alpha
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = torch.where(sigma > 0, (x_t - alpha * x0) / sigma.clamp_min(1e-30), eps)
    return eps, x0


# --------------------------------------------------------------------------- grids and checks


def walk_times(nfe: int, grid: str, t_start: float | torch.Tensor = 1.0) -> torch.Tensor:
    """The walk's times, ascending from 0: ``(nfe + 1,)`` for a scalar ``t_start``, ``(nfe + 1, B)`` for one
    per sample. ``u_n`` comes from ``schedule.time_grid(nfe, grid)`` and is scaled by ``t_start``."""
    u = time_grid(nfe, grid).t
    if torch.is_tensor(t_start) and t_start.ndim == 1:
        return u[:, None] * t_start.double().cpu()[None, :]
    return u * float(t_start)


def _check_common(x: torch.Tensor, *, eta: float = 0.0, trajectory_stride: int = 0, clip_x0=None,
                  name: str = "x") -> None:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"{name} must be a floating tensor batched as (B, ...); got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    if not (isinstance(eta, (int, float)) and eta >= 0):
        raise ValueError(f"eta must be a number >= 0 (0: deterministic DDIM, 1: DDPM's variance); got {eta!r}")
    if type(trajectory_stride) is not int or trajectory_stride < 0:
        raise ValueError(f"trajectory_stride must be an int >= 0 (0 keeps only the endpoints); "
                         f"got {trajectory_stride!r}")
    if clip_x0 is not None and not clip_x0 > 0:
        raise ValueError(f"clip_x0 must be None or > 0; got {clip_x0!r}")


def _check_t_start(t_start, batch: int, name: str = "t_start") -> float | torch.Tensor:
    """A start time in (0, 1]: a number, or a (B,) tensor (one per sample)."""
    if torch.is_tensor(t_start) and t_start.ndim == 1:
        if t_start.shape != (batch,):
            raise ValueError(f"{name} must be a number or have shape ({batch},); got {tuple(t_start.shape)}")
        bad = ~((t_start > 0) & (t_start <= 1))
    else:
        t_start = float(t_start)
        bad = torch.tensor(not 0 < t_start <= 1)
    if bool(bad.any()):
        raise ValueError(f"{name} must lie in (0, 1] (t=0 clean, t=1 noise); got {t_start}")
    return t_start


# --------------------------------------------------------------------------- walks


def _estimator(model, schedule: VPSchedule, cond, clip_x0):
    """The walk's ``predict``: (x̂0, ε̂) at (x_t, t) (see :func:`predict`)."""
    def estimate(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps, x0 = predict(model, schedule, x_t, t, cond, clip_x0=clip_x0)
        return x0, eps
    return estimate


def _downwards(times: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs (t_n, t_{n−1}) from the top of ``times`` (ascending, (N+1,) or (N+1, B)) down to times[0]."""
    return [(times[n], times[n - 1]) for n in range(times.shape[0] - 1, 0, -1)]


def _ddim_jump(schedule: VPSchedule, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> StepPosterior:
    """``x_t = α_t x̂0 + σ_t ε̂``: the deterministic DDIM move to ``t`` from either side (inversion walks up);
    nothing is drawn (std None)."""
    return StepPosterior(expand_like(schedule._alpha(t), x0) * x0 + expand_like(schedule._sigma(t), x0) * eps, None)


def _reverse_walk(model, x, schedule, times, *, eta, ancestral, cond, generator, callback, trajectory_stride,
                  clip_x0) -> SampleResult:
    """Walk ``times`` (ascending, (N+1,) or (N+1, B)) from the top down to times[0] with DDPM or DDIM(η) steps;
    unchecked."""
    def step(n, t, s, x_t, x0, eps):
        return ddpm_posterior(schedule, x_t, x0, t, s) if ancestral else ddim_step(schedule, x0, eps, t, s, eta)

    return walk(x, _downwards(times), predict=_estimator(model, schedule, cond, clip_x0), step=step,
                draws=[ancestral or eta > 0] * (times.shape[0] - 1), noise=lambda x_t: randn_like(x_t, generator),
                callback=callback, trajectory_stride=trajectory_stride)


def prior_noise(shape, *, generator: torch.Generator | None = None, dtype=torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """A draw of the walk's start at t = 1, N(0, I) (q(x_1 | x0) = N(α_1 x0, σ_1²) with α_1 ≈ 0.007 for the
    default schedule), on the generator's device so that a seed reproduces it."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=gen_device).to(device)


@torch.no_grad()
def ddpm(model, x_start: torch.Tensor, schedule: VPSchedule, *, nfe: int, grid: str = "quadratic",
         t_start: float | torch.Tensor = 1.0, cond=None, generator: torch.Generator | None = None,
         callback: Callback | None = None, trajectory_stride: int = 0,
         clip_x0: float | None = None) -> SampleResult:
    """DDPM ancestral sampling from ``x_start`` at ``t_start`` (default 1: pure noise, use :func:`prior_noise`)
    down to t = 0 in ``nfe`` steps of q(x_s | x_t, x̂0) (DDPM eq. 6–7; I2SB Fig. 8's Palette sampler)."""
    _check_common(x_start, trajectory_stride=trajectory_stride, clip_x0=clip_x0, name="x_start")
    times = walk_times(nfe, _check_grid(grid), _check_t_start(t_start, x_start.shape[0]))
    return _reverse_walk(model, x_start, schedule, times, eta=1.0, ancestral=True, cond=cond, generator=generator,
                         callback=callback, trajectory_stride=trajectory_stride, clip_x0=clip_x0)


@torch.no_grad()
def ddim(model, x_start: torch.Tensor, schedule: VPSchedule, *, nfe: int, eta: float = 0.0,
         grid: str = "quadratic", t_start: float | torch.Tensor = 1.0, cond=None,
         generator: torch.Generator | None = None, callback: Callback | None = None, trajectory_stride: int = 0,
         clip_x0: float | None = None) -> SampleResult:
    """DDIM(η) from ``x_start`` at ``t_start`` down to t = 0 in ``nfe`` steps (DDIM eq. 12; η = 0, the default,
    is the deterministic probability-flow solver of ODEdit eq. 8). ``t_start`` may be one time per sample."""
    _check_common(x_start, eta=eta, trajectory_stride=trajectory_stride, clip_x0=clip_x0, name="x_start")
    times = walk_times(nfe, _check_grid(grid), _check_t_start(t_start, x_start.shape[0]))
    return _reverse_walk(model, x_start, schedule, times, eta=float(eta), ancestral=False, cond=cond,
                         generator=generator, callback=callback, trajectory_stride=trajectory_stride,
                         clip_x0=clip_x0)


@torch.no_grad()
def ddim_invert(model, x0: torch.Tensor, schedule: VPSchedule, *, nfe: int, grid: str = "quadratic",
                t_end: float = 1.0, cond=None, callback: Callback | None = None, trajectory_stride: int = 0,
                clip_x0: float | None = None) -> SampleResult:
    """DDIM inversion: the deterministic DDIM step run from t = 0 up to ``t_end`` in ``nfe`` steps,
    ``x_t = α_t x̂0(x_s, s) + σ_t ε̂(x_s, s)`` (ODEdit Alg. 1's ODE_SOLVER_forward). The result's ``x0``
    is where this walk ends, the latent at ``t_end``; ``ddim(model, result.x0, …, t_start=t_end)`` on the same
    grid walks back (to O(1/nfe))."""
    _check_common(x0, trajectory_stride=trajectory_stride, clip_x0=clip_x0, name="x0")
    times = walk_times(nfe, _check_grid(grid), _check_t_start(t_end, x0.shape[0], "t_end"))
    upwards = [(times[n], times[n + 1]) for n in range(nfe)]
    return walk(x0, upwards, predict=_estimator(model, schedule, cond, clip_x0),
                step=lambda n, s, t, x, x0_hat, eps: _ddim_jump(schedule, x0_hat, eps, t), draws=[False] * nfe,
                noise=None, callback=callback, trajectory_stride=trajectory_stride)


def _check_grid(grid: str) -> str:
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {list(GRIDS)}; got {grid!r}")
    return grid
