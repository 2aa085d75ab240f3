"""The VP diffusion's noise schedule: continuous-time DDPM with a linear rate β(t) on [0, 1].

Time runs as everywhere in the project: ``t = 0`` is the clean image, ``t = 1``
(nearly) pure noise. The forward process is the VP-SDE
``dX = −½β(t) X dt + √β(t) dW`` (Song et al. 2021), whose marginal given a clean
``x0`` is

    q(x_t | x0) = N(α_t x0, σ_t² I),   α_t = exp(−½Λ(t)),   σ_t² = 1 − α_t²,
    Λ(t) = ∫₀ᵗ β = β_min t + ½(β_max − β_min) t²                  (closed form).

With the defaults β_min = 0.1, β_max = 20 this is the continuum limit of DDPM's
1000 linear betas from 1e-4 to 0.02 (Ho et al. 2020; ODEdit eq. 1 and 8 and
Palette use that chain), and of ``Λ(1) = 10.05``: α_1 ≈ 6.6e-3, σ_1 ≈ 1 − 2e-5.

The schedule is a separate object from the sampler's step grid (``schedule.time_grid``),
as for the bridge: its shape never depends on the number of steps.

``noise_ratio(t) = σ_t/α_t`` is the noise level of the *rescaled* state ``x_t/α_t = x0 +
(σ_t/α_t) ε``: a variance-exploding noise level. :meth:`VPSchedule.time_at_noise_ratio`
inverts it in closed form, which is how Noise-I2SB's decoder enters the chain at the
time whose noise matches the hash level λ(y) (P-I2SB eq. 18).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..schedule import Time, as_time

__all__ = ["VPSchedule"]


@dataclass(frozen=True)
class VPSchedule:
    """Linear β(t) = β_min + t(β_max − β_min) on [0, 1] with its closed-form integral (see the module docstring).

    Every public method takes a float or a tensor of times in [0, 1] and computes in
    float64 unless the times already are another floating dtype.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        if not (self.beta_min > 0 and self.beta_max >= self.beta_min):
            raise ValueError(f"need 0 < beta_min <= beta_max; got beta_min={self.beta_min}, beta_max={self.beta_max}")

    # Unchecked versions: t already validated by as_time (the samplers' hot paths call these).
    def _log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t)  # −Λ(t)

    def _alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(0.5 * self._log_alpha_bar(t))

    def _sigma2(self, t: torch.Tensor) -> torch.Tensor:
        # 1 − exp(−Λ) through expm1: full relative precision for small t, where σ² ≈ Λ.
        return -torch.expm1(self._log_alpha_bar(t))

    def _sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self._sigma2(t).sqrt()

    def _transition_var(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """σ²_{t|s} = 1 − ᾱ_t/ᾱ_s, the variance of q(x_t | x_s) for s ≤ t (DDPM's β̃ without the ratio)."""
        return -torch.expm1(self._log_alpha_bar(t) - self._log_alpha_bar(s))

    # Public, checked versions.
    def beta(self, t: Time) -> torch.Tensor:
        """The rate β(t)."""
        t = as_time(t)
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha_bar(self, t: Time) -> torch.Tensor:
        """log ᾱ_t = −Λ(t) = −∫₀ᵗ β."""
        return self._log_alpha_bar(as_time(t))

    def alpha(self, t: Time) -> torch.Tensor:
        """α_t = √ᾱ_t, the signal scale of q(x_t | x0)."""
        return self._alpha(as_time(t))

    def sigma2(self, t: Time) -> torch.Tensor:
        """σ_t² = 1 − ᾱ_t, the noise variance of q(x_t | x0)."""
        return self._sigma2(as_time(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return self._sigma(as_time(t))

    def noise_ratio(self, t: Time) -> torch.Tensor:
        """σ_t/α_t: the VE noise level of x_t/α_t = x0 + (σ_t/α_t) ε (0 at t = 0)."""
        t = as_time(t)
        return torch.sqrt(torch.expm1(-self._log_alpha_bar(t)))  # σ²/α² = 1/ᾱ − 1 = e^Λ − 1

    @property
    def max_noise_ratio(self) -> float:
        """σ_1/α_1, the largest noise level the chain can absorb (≈ 152 for the defaults)."""
        return float(self.noise_ratio(1.0))

    def time_at_noise_ratio(self, ratio: torch.Tensor | float) -> torch.Tensor:
        """The time t with σ_t/α_t = ``ratio``, in closed form: Λ(t) = log(1 + ratio²).

        Solves ½(β_max − β_min) t² + β_min t − c = 0 with c = log1p(ratio²) as
        t = 2c / (β_min + √(β_min² + 2(β_max − β_min) c)), the form without cancellation
        (exact also for β_max = β_min). ``ratio`` must lie in [0, :attr:`max_noise_ratio`].
        """
        ratio = torch.as_tensor(ratio, dtype=torch.float64) if not torch.is_tensor(ratio) else ratio
        ratio = ratio if ratio.is_floating_point() else ratio.double()
        hi = self.max_noise_ratio
        if ratio.numel() and not bool(((ratio >= 0) & (ratio <= hi * (1 + 1e-12))).all()):
            finite = ratio[torch.isfinite(ratio)]
            got = f"[{finite.min().item():g}, {finite.max().item():g}]" if finite.numel() else "NaN/inf"
            raise ValueError(f"noise ratio σ/α must lie in [0, {hi:.4g}] (the schedule's σ_1/α_1); got values in {got}")
        c = torch.log1p(ratio * ratio)
        t = 2 * c / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * (self.beta_max - self.beta_min) * c))
        return t.clamp(0.0, 1.0)
