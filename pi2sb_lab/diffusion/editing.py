"""Restoring with an unconditional VP prior: SDEdit, ODEdit (ODEdit Alg. 1), and the DDIM denoiser of Noise-I2SB.

* **SDEdit** (Meng et al. 2022): noise the observation to ``t0``,
  ``x_{t0} = α_{t0} y + σ_{t0} z``, then denoise with the reverse chain (DDPM, η = 1,
  by default). ``t0`` trades faithfulness (small) for realism (large); ``t0 = 0`` returns
  ``y`` itself.
* **ODEdit** (ODEdit Alg. 1): DDIM-invert ``y`` to the latent at ``t_end``, then walk back
  with DDIM, and at chosen latent times run ``K`` Langevin updates first,
  ``x ← x − α_t ε̂(x, t)/σ_t + √(2 α_t T) η`` with ``α_t = ε σ_t/σ_1`` (σ_1 the noise
  of the grid's first time above 0), step size ε and temperature T. ``K = 0`` is
  inversion followed by DDIM, exactly.
* **DDIMDenoiser**: Noise-I2SB's decoder (P-I2SB eq. 18, "Denoise uses DDIM"): a sample
  ``x̂ = x + λ ε`` is the rescaled VP state at the time ``t*`` where ``σ/α = λ``, so
  ``α_{t*} x̂ ~ q(x_{t*} | x)``; DDIM from ``t*`` to 0 denoises it. ``nfe = 1`` is the
  one-step Tweedie estimate x̂0.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .._checks import check_finite
from ..batch import expand_like, randn_like
from ..walk import SampleResult, walk
from .sampling import _check_common, _check_grid, _ddim_jump, _downwards, _estimator, _reverse_walk, ddim, \
    ddim_invert, predict, walk_times
from .schedule import VPSchedule

__all__ = ["sdedit", "langevin", "default_langevin_at", "odedit", "DDIMDenoiser", "ODEDIT_PAPER"]

# ODEdit §4.1 (CelebA 64×64): DDIM with 100 steps, K = 100 Langevin updates (200 / 300 for medium /
# heavy corruptions), step size ε = 1e-6, temperature 1/3, Langevin in 4 of the 100 latents.
ODEDIT_PAPER = dict(nfe=100, langevin_steps=100, step_size=1e-6, temperature=1 / 3, grid="uniform")


@torch.no_grad()
def sdedit(model, y: torch.Tensor, schedule: VPSchedule, *, t0: float, nfe: int, eta: float = 1.0,
           grid: str = "quadratic", cond=None, generator: torch.Generator | None = None,
           callback: Callable | None = None, trajectory_stride: int = 0,
           clip_x0: float | None = None) -> SampleResult:
    """SDEdit: ``x_{t0} = α_{t0} y + σ_{t0} z``, then DDIM(η) from ``t0`` to 0 in ``nfe`` steps (η = 1: DDPM).

    ``t0 = 0`` returns ``y`` unchanged (trajectory ``[y]``, no network call, nothing drawn).
    """
    _check_common(y, eta=eta, trajectory_stride=trajectory_stride, clip_x0=clip_x0, name="y")
    check_finite("y", y)
    if not (isinstance(t0, (int, float)) and 0 <= t0 <= 1):
        raise ValueError(f"t0 must be a number in [0, 1] (0 keeps y, 1 forgets it); got {t0!r}")
    times = walk_times(nfe, _check_grid(grid), float(t0))
    if t0 == 0:
        return SampleResult(y, y[None], y.new_empty((0, *y.shape)), times[:1], 0)
    t = times[-1]
    x = expand_like(schedule._alpha(t), y) * y + expand_like(schedule._sigma(t), y) * randn_like(y, generator)
    return _reverse_walk(model, x, schedule, times, eta=float(eta), ancestral=False, cond=cond, generator=generator,
                         callback=callback, trajectory_stride=trajectory_stride, clip_x0=clip_x0)


@torch.no_grad()
def langevin(model, x: torch.Tensor, schedule: VPSchedule, t: float | torch.Tensor, *, steps: int,
             step: float, temperature: float = 1.0, cond=None, generator: torch.Generator | None = None,
             clip_x0: float | None = None) -> torch.Tensor:
    """``steps`` Langevin updates at the fixed time ``t`` (ODEdit Alg. 1's inner loop, eq. 5 with eq. 9's score):
    ``x ← x − step · ε̂(x, t)/σ_t + √(2 · step · temperature) η``.

    With the exact score of a Gaussian marginal of variance v the chain's stationary
    variance is ``temperature · v / (1 − step/(2v))`` (unadjusted Langevin), checked in the tests.
    """
    if type(steps) is not int or steps < 0:
        raise ValueError(f"steps must be an int >= 0; got {steps!r}")
    if not step >= 0 or not temperature >= 0:
        raise ValueError(f"step and temperature must be >= 0; got step={step!r}, temperature={temperature!r}")
    t = torch.as_tensor(t, dtype=torch.float64)
    if bool((t <= 0).any()) or bool((t > 1).any()):
        raise ValueError(f"t must lie in (0, 1] (σ_t = 0 at t = 0 leaves the score undefined); got {t}")
    sigma = expand_like(schedule._sigma(t), x)
    noise_scale = (2.0 * step * temperature) ** 0.5
    for _ in range(steps):
        eps, _ = predict(model, schedule, x, t, cond, clip_x0=clip_x0)
        x = x - step * eps / sigma
        if noise_scale > 0:
            x = x + noise_scale * randn_like(x, generator)
    return x


def default_langevin_at(nfe: int) -> tuple[int, ...]:
    """ODEdit §4.1's placement scaled to ``nfe`` latents: 4 evenly spaced ones from the inverted end,
    the grid indices n = N, N − N/4, N − N/2, N − 3N/4 (100, 75, 50, 25 for N = 100; fewer if N < 4)."""
    return tuple(sorted({nfe - round(k * nfe / 4) for k in range(4)} - {0}, reverse=True))


@torch.no_grad()
def odedit(model, y: torch.Tensor, schedule: VPSchedule, *, nfe: int = 100, langevin_steps: int = 100,
           step_size: float = 1e-6, temperature: float = 1 / 3, langevin_at: tuple[int, ...] | None = None,
           t_end: float = 1.0, grid: str = "uniform", cond=None, generator: torch.Generator | None = None,
           callback: Callable | None = None, trajectory_stride: int = 0,
           clip_x0: float | None = None) -> SampleResult:
    """ODEdit (ODEdit Alg. 1); defaults are its §4.1 settings (see :data:`ODEDIT_PAPER`).

    DDIM-invert ``y`` over ``nfe`` steps of ``grid`` up to ``t_end``; then for n = N … 1: if n is in
    ``langevin_at`` (grid indices, default :func:`default_langevin_at`), run ``langevin_steps`` updates
    at t_n with step α_n = ``step_size`` · σ_{t_n}/σ_{t_1}; take the DDIM step to t_{n−1}. The result's
    trajectory starts at the inverted latent; ``callback`` sees the backward DDIM steps. ``nfe`` on the
    result counts every network call: 2N + K·len(langevin_at).
    """
    _check_common(y, trajectory_stride=trajectory_stride, clip_x0=clip_x0, name="y")
    if type(langevin_steps) is not int or langevin_steps < 0:
        raise ValueError(f"langevin_steps must be an int >= 0 (0: inversion + DDIM only); got {langevin_steps!r}")
    if not (isinstance(step_size, (int, float)) and step_size >= 0):
        raise ValueError(f"step_size must be a number >= 0; got {step_size!r}")
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0; got {temperature!r}")
    inverted = ddim_invert(model, y, schedule, nfe=nfe, grid=grid, t_end=t_end, cond=cond, clip_x0=clip_x0)
    times = walk_times(nfe, grid, float(t_end))
    at = default_langevin_at(nfe) if langevin_at is None else tuple(langevin_at)
    if any(type(n) is not int or not 1 <= n <= nfe for n in at):
        raise ValueError(f"langevin_at must hold grid indices in [1, nfe={nfe}] (latents x_{{t_n}}); got {at}")
    sigma_1 = schedule._sigma(times[1])
    calls = inverted.nfe + nfe + langevin_steps * len(set(at))

    def refine(n: int, x: torch.Tensor) -> torch.Tensor:
        if n not in at or langevin_steps == 0:
            return x
        alpha_n = float(step_size * schedule._sigma(times[n]) / sigma_1)      # α_t = ε σ_t/σ_1
        return langevin(model, x, schedule, times[n], steps=langevin_steps, step=alpha_n, temperature=temperature,
                        cond=cond, generator=generator, clip_x0=clip_x0)

    back = walk(inverted.x0, _downwards(times), predict=_estimator(model, schedule, cond, clip_x0),
                step=lambda k, t, s, x, x0, eps: _ddim_jump(schedule, x0, eps, s),  # DDIM, η = 0
                draws=[False] * nfe, noise=None, callback=callback, trajectory_stride=trajectory_stride,
                refine=lambda k, x: refine(nfe - k, x))                               # step k leaves t_{N−k}
    return dataclasses.replace(back, nfe=calls)


class DDIMDenoiser:
    """Noise-I2SB's ``Denoise(x̂; λ)`` from a VP prior (P-I2SB eq. 18): a :class:`~pi2sb_lab.hashing.Denoiser`.

    ``denoiser(x_noisy, sigma)`` with ``sigma`` a scalar or ``(N,)``: each sample enters the chain at
    t* = ``schedule.time_at_noise_ratio(sigma)`` as ``α_{t*} x_noisy`` and walks DDIM (η = 0) to t = 0
    in ``nfe`` steps of ``grid``. Samples with σ = 0 are returned unchanged. ``model``: the unconditional
    prior's ε-network ``model(x_t, t, None)``, on the device of the images it will denoise.
    """

    def __init__(self, model, schedule: VPSchedule, *, nfe: int = 10, grid: str = "quadratic",
                 clip_x0: float | None = None) -> None:
        if type(nfe) is not int or nfe < 1:
            raise ValueError(f"nfe must be an int >= 1; got {nfe!r}")
        self.model, self.schedule, self.nfe, self.grid = model, schedule, nfe, _check_grid(grid)
        self.clip_x0 = clip_x0

    @torch.no_grad()
    def __call__(self, x_noisy: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        _check_common(x_noisy, name="x_noisy")
        check_finite("x_noisy", x_noisy)
        n = x_noisy.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float64).detach().double().cpu().reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(n)
        if sigma.shape != (n,):
            raise ValueError(f"sigma must be a scalar or have shape ({n},); got {tuple(sigma.shape)}")
        if not bool((sigma >= 0).all()):
            raise ValueError(f"sigma must be >= 0 (a noise std); got min {sigma.min().item():g}")
        t_star = self.schedule.time_at_noise_ratio(sigma)
        rows = t_star > 0
        out = x_noisy.clone()
        if bool(rows.any()):
            idx = rows.nonzero().squeeze(1).to(x_noisy.device)
            start = expand_like(self.schedule._alpha(t_star[rows]), x_noisy[idx]) * x_noisy[idx]
            out[idx] = ddim(self.model, start, self.schedule, nfe=self.nfe, grid=self.grid, t_start=t_star[rows],
                            clip_x0=self.clip_x0).x0
        return out

    def __repr__(self) -> str:
        return f"DDIMDenoiser(nfe={self.nfe}, grid={self.grid!r}, schedule={self.schedule!r})"
