"""Bridge families: linear SDEs pinned at a Dirac pair (X0, X1), all with marginals a_t·X0 + b_t·X1 + c_t·ε.

Each family is a linear SDE ``dY = f_t·Y dt + g_t dW`` on ``Y = X − κ·X1`` (κ = 1 for GOUB,
which reverts to the degraded image; κ = 0 for the others), pinned at ``X_1 = X1`` by
Doob's h-transform. Unpinned, ``Y_t | Y_0 = N(α_t Y_0, σ²_t)`` with α_t = exp ∫₀ᵗ f and
σ²_t = α²_t ν_t, where ``ν_t = σ²_t/α²_t = ∫₀ᵗ g²/α²`` (one over the SNR) grows from 0.
Gaussian conditioning on ``Y_1`` (Cov(Y_t, Y_1) = (α_1/α_t) σ²_t) gives, with ν̄_t = ν_1 − ν_t:

    a_t = α_t ν̄_t/ν_1,   b_t^Y = (α_t/α_1) ν_t/ν_1,   c²_t = α²_t ν_t ν̄_t/ν_1

(DDBM Thm. 1's x_T coefficient (α_t/α_T)·SNR_T/SNR_t and x0 coefficient α_t(1 − SNR_T/SNR_t);
I2SB Prop. 3.3 for α = 1, ν = σ²). With κ = 1, X_t = X1 + Y_t and Y_1 = 0, so b_t = 1 − a_t.

A family supplies the primitives α_t, ν_t, ν̄_t (computed without cancellation),
f_t and g²_t in continuous time on [0, 1]; the coefficients, the one-step posterior
p(X_s | X0, X_t), the ε target and the probability-flow ODE follow here, once, for
all families. :class:`I2SBBridge` keeps the I2SB core's own formulas so that its
results do not move by a bit. Families are immutable and hashable (the sampler
caches its step coefficients per family and grid).

Families: ``i2sb`` (any :class:`~pi2sb_lab.schedule.Schedule`, f = 0), ``ddbm-vp``
(DDBM's VP bridge, β(t) = β_min + β_d t), ``ddbm-ve`` (DDBM's VE bridge, σ(t) = σ_max t)
and ``goub`` (GOUB's generalized OU bridge with a constant rate θ and stationary
variance λ², g² = 2λ²θ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from ._checks import check_real
from .schedule import Schedule, SymmetricSchedule


@dataclass(frozen=True)
class BridgeCoeffs:
    """Coefficients of q(X_t | X0, X1) = N(mu_x0·X0 + mu_x1·X1, var·I): a_t, b_t, c²_t (I2SB Prop. 3.3)."""

    mu_x0: torch.Tensor
    mu_x1: torch.Tensor
    var: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()


class MarkovStep(NamedTuple):
    """p(X_s | X0, X_t, X1) = N(x0·X0 + x1·X1 + xt·X_t, var·I) for s < t (the bridge is Markov)."""

    x0: torch.Tensor
    x1: torch.Tensor
    xt: torch.Tensor
    var: torch.Tensor


class OdeCoeffs(NamedTuple):
    """The probability-flow ODE of the pinned bridge: dX/dt = da·X0 + db·X1 + dlog_c·(X − a X0 − b X1)."""

    da: torch.Tensor
    db: torch.Tensor
    dlog_c: torch.Tensor


class BridgeFamily:
    """Base class: subclasses define the primitives ``_alpha``, ``_nu``, ``_nu_bar``, ``_f``, ``_g2``.

    Every method takes checked times (tensors in [0, 1], see ``schedule.as_time``).
    ``kappa``: 1 when the unpinned SDE reverts to X1 (GOUB), else 0.
    """

    name = "base"
    kappa = 0.0

    @property
    def needs_x1(self) -> bool:
        """Whether the ε target and the Markov step involve X1 (κ ≠ 0)."""
        return self.kappa != 0.0

    # -- primitives
    def _alpha(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _nu(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _nu_bar(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _f(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _g2(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- derived, for every family
    def _coeffs(self, t: torch.Tensor) -> BridgeCoeffs:
        alpha, nu, nu_bar = self._alpha(t), self._nu(t), self._nu_bar(t)
        nu1 = nu + nu_bar
        a = alpha * nu_bar / nu1
        b_y = alpha / self._alpha(torch.ones_like(t)) * nu / nu1
        b = 1.0 - a if self.kappa else b_y
        return BridgeCoeffs(mu_x0=a, mu_x1=b, var=alpha * alpha * nu * nu_bar / nu1)

    def _markov(self, t: torch.Tensor, s: torch.Tensor) -> MarkovStep:
        # Y_s | Y_0, Y_t of the unpinned SDE (X1 adds nothing: the process is Markov):
        # mean α_s Y_0 + (α_s/α_t)(ν_s/ν_t)(Y_t − α_t Y_0), var α²_s ν_s (ν_t − ν_s)/ν_t.
        alpha_t, alpha_s, nu_t, nu_s = self._alpha(t), self._alpha(s), self._nu(t), self._nu(s)
        gap = nu_t - nu_s
        xt = alpha_s / alpha_t * nu_s / nu_t
        x0 = alpha_s * gap / nu_t
        x1 = self.kappa * (1.0 - x0 - xt)  # from Y = X − κ X1
        return MarkovStep(x0=x0, x1=x1 * torch.ones_like(x0), xt=xt, var=alpha_s * alpha_s * nu_s * gap / nu_t)

    def _eps_scales(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t) of the unpinned Y_t | Y_0: the ε target is (Y_t − α_t Y_0)/σ_t."""
        alpha = self._alpha(t)
        return alpha, alpha * self._nu(t).sqrt()

    def _ode(self, t: torch.Tensor) -> OdeCoeffs:
        # With ν' = g²/α² and α' = f α, differentiate a, b and log c² (see the module docstring).
        alpha, nu, nu_bar, f = self._alpha(t), self._nu(t), self._nu_bar(t), self._f(t)
        nu1 = nu + nu_bar
        dnu = self._g2(t) / (alpha * alpha)
        a = alpha * nu_bar / nu1
        da = f * a - alpha * dnu / nu1
        if self.kappa:
            db = -da
        else:
            b = alpha / self._alpha(torch.ones_like(t)) * nu / nu1
            db = f * b + alpha / self._alpha(torch.ones_like(t)) * dnu / nu1
        return OdeCoeffs(da=da, db=db, dlog_c=f + dnu * (nu_bar - nu) / (2.0 * nu * nu_bar))


@dataclass(frozen=True)
class I2SBBridge(BridgeFamily):
    """I2SB's bridge on a β schedule (f = 0, g² = β; I2SB Prop. 3.3): α = 1, ν = σ², ν̄ = σ̄².

    The coefficients, the step posterior and the ε target are I2SB's own expressions (not
    the generic ones, which agree to rounding) so that every I2SB result stays bit-identical.
    """

    schedule: Schedule = SymmetricSchedule()
    name = "i2sb"

    def _alpha(self, t):
        return torch.ones_like(t)

    def _nu(self, t):
        return self.schedule._sigma2(t)

    def _nu_bar(self, t):
        return self.schedule._sigma_bar2(t)

    def _f(self, t):
        return torch.zeros_like(t)

    def _g2(self, t):
        return self.schedule._beta(t)

    def _coeffs(self, t):
        s2, sb2 = self.schedule._sigma2(t), self.schedule._sigma_bar2(t)
        total = s2 + sb2
        return BridgeCoeffs(mu_x0=sb2 / total, mu_x1=s2 / total, var=s2 * sb2 / total)

    def _markov(self, t, s):
        # I2SB eq. 4 (DDPM posterior) with α² = σ²_t − σ²_s: mean (α² X0 + σ²_s X_t)/σ²_t, var σ²_s α²/σ²_t.
        s2_t, s2_s = self.schedule._sigma2(t), self.schedule._sigma2(s)
        alpha2 = s2_t - s2_s
        return MarkovStep(x0=alpha2 / s2_t, x1=torch.zeros_like(s2_t), xt=s2_s / s2_t, var=s2_s * alpha2 / s2_t)

    def _eps_scales(self, t):
        return torch.ones_like(t), self.schedule._sigma2(t).sqrt()


@dataclass(frozen=True)
class DDBMVPBridge(BridgeFamily):
    """DDBM's VP bridge: dY = −½β Y dt + √β dW with β(t) = β_min + β_d t (DDBM's I2I default 0.1, 2).

    Λ(t) = ∫₀ᵗ β = β_min t + ½β_d t²; α = e^{−Λ/2}; ν = e^Λ − 1; ν̄ = e^Λ (e^{Λ_1 − Λ} − 1).
    """

    beta_min: float = 0.1
    beta_d: float = 2.0
    name = "ddbm-vp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta_min", check_real("beta_min", self.beta_min, low=0, low_open=True))
        object.__setattr__(self, "beta_d", check_real("beta_d", self.beta_d, low=0))

    def _lam(self, t):
        return self.beta_min * t + 0.5 * self.beta_d * t * t

    def _alpha(self, t):
        return torch.exp(-0.5 * self._lam(t))

    def _nu(self, t):
        return torch.expm1(self._lam(t))

    def _nu_bar(self, t):
        lam = self._lam(t)
        return torch.exp(lam) * torch.expm1(self._lam(torch.ones_like(t)) - lam)

    def _f(self, t):
        return -0.5 * self._g2(t)

    def _g2(self, t):
        return self.beta_min + self.beta_d * t


@dataclass(frozen=True)
class DDBMVEBridge(BridgeFamily):
    """DDBM's VE bridge: dY = g dW with σ(t) = σ_max·t, so ν = σ²_max t², g² = 2σ²_max t (DDBM: σ_max 80).

    DDBM indexes time by σ itself; on [0, 1] that is t = σ/σ_max, the same bridge.
    """

    sigma_max: float = 80.0
    name = "ddbm-ve"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma_max", check_real("sigma_max", self.sigma_max, low=0, low_open=True))

    def _alpha(self, t):
        return torch.ones_like(t)

    def _nu(self, t):
        return self.sigma_max**2 * t * t

    def _nu_bar(self, t):
        return self.sigma_max**2 * (1.0 - t) * (1.0 + t)

    def _f(self, t):
        return torch.zeros_like(t)

    def _g2(self, t):
        return 2.0 * self.sigma_max**2 * t


@dataclass(frozen=True)
class GOUBBridge(BridgeFamily):
    """GOUB: dX = θ (X1 − X) dt + g dW with g² = 2λ²θ (GOUB eq. 5–6), a constant θ here.

    On Y = X − X1: α = e^{−θt}, σ² = λ²(1 − e^{−2θt}), ν = λ²(e^{2θt} − 1),
    ν̄ = λ² e^{2θt}(e^{2θ(1−t)} − 1). GOUB pins X_T = μ = X1, so b_t = 1 − a_t.
    """

    theta: float = 3.0
    lam: float = 0.3
    name = "goub"
    kappa = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "theta", check_real("theta", self.theta, low=0, low_open=True))
        object.__setattr__(self, "lam", check_real("lam", self.lam, low=0, low_open=True))

    def _alpha(self, t):
        return torch.exp(-self.theta * t)

    def _nu(self, t):
        return self.lam**2 * torch.expm1(2.0 * self.theta * t)

    def _nu_bar(self, t):
        return self.lam**2 * torch.exp(2.0 * self.theta * t) * torch.expm1(2.0 * self.theta * (1.0 - t))

    def _f(self, t):
        return torch.full_like(t, -self.theta)

    def _g2(self, t):
        return torch.full_like(t, 2.0 * self.lam**2 * self.theta)


FAMILIES = {"i2sb": I2SBBridge, "ddbm-vp": DDBMVPBridge, "ddbm-ve": DDBMVEBridge, "goub": GOUBBridge}


def make_family(name: str, **kwargs) -> BridgeFamily:
    """A family by name: "i2sb" (``schedule=``), "ddbm-vp" (``beta_min``, ``beta_d``), "ddbm-ve"
    (``sigma_max``), "goub" (``theta``, ``lam``)."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}; got {name!r}")
    return FAMILIES[name](**kwargs)


def as_family(bridge: Schedule | BridgeFamily) -> BridgeFamily:
    """A family as given, or a schedule read as I2SB's bridge on it (what the I2SB API has always taken)."""
    if isinstance(bridge, BridgeFamily):
        return bridge
    if isinstance(bridge, Schedule):
        return I2SBBridge(bridge)
    raise TypeError(f"expected a Schedule (I2SB's bridge) or a BridgeFamily ({', '.join(sorted(FAMILIES))}); "
                    f"got {type(bridge).__name__}")


def check_eta(eta) -> float:
    """The sampler's noise dial η ∈ [0, 1]: ρ = η·ρ_Markov (0: implicit, 1: Markovian posterior step)."""
    return check_real("eta", eta, low=0, high=1)


__all__ = ["BridgeCoeffs", "MarkovStep", "OdeCoeffs", "BridgeFamily", "I2SBBridge", "DDBMVPBridge", "DDBMVEBridge",
           "GOUBBridge", "FAMILIES", "make_family", "as_family", "check_eta"]
