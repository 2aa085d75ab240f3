"""Continuous-time diffusion schedules β(t) on [0, 1] and the step grids samplers walk.

Time runs from clean (t = 0) to degraded (t = 1). A schedule is a rate β(t)
with closed-form integrals

    σ²(t) = ∫₀ᵗ β(τ) dτ        (variance accumulated from the clean side)
    σ̄²(t) = ∫ₜ¹ β(τ) dτ        (variance accumulated from the degraded side)

(I2SB Prop. 3.3). A sampler's step grid is a separate object, so the shape of
β never depends on the number of steps (the NVlabs/I2SB #11 bug).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import torch

from ._checks import check_int, check_real

Time = torch.Tensor | float

GRIDS = ("uniform", "quadratic")
# A grid of N steps is N network calls when sampled; a million is ~1000× what I2SB uses and
# still only 8 MB of times, while an unbounded N (a typo, 10**12) would try to allocate terabytes.
MAX_NFE = 1_000_000


def as_time(t: Time, *, name: str = "t") -> torch.Tensor:
    """``t`` as a floating tensor (float64 unless it already is one), checked to lie in [0, 1].

    This is the one validation of a time argument: public functions call it once at
    their boundary and hand the checked tensor to the unchecked ``Schedule._…`` methods,
    so a sampler step does not re-validate (a host sync on a GPU) three times over.
    """
    if not torch.is_tensor(t):
        try:
            t = torch.as_tensor(t, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a number or a tensor of times in [0, 1]; got {t!r} "
                            f"({type(t).__name__})") from err
    elif t.is_complex():
        raise TypeError(f"{name} must be a real tensor of times in [0, 1]; got {t.dtype}")
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):  # NaN fails both comparisons
        finite = t[torch.isfinite(t)]
        got = f"values in [{finite.min().item():g}, {finite.max().item():g}]" if finite.numel() else ""
        if finite.numel() < t.numel():
            got += (" and " if got else "") + "NaN/inf"
        raise ValueError(f"{name} must lie in [0, 1] (t=0 clean, t=1 degraded); got {got}")
    return t


class Schedule:
    """Base class: subclasses define ``_beta`` and ``_sigma2`` on checked times; the rest follows.

    The public methods take any time (a float or a tensor), check it once with
    :func:`as_time` and call the unchecked ``_beta`` / ``_sigma2`` / ``_sigma_bar2``,
    which the library's own hot paths call directly on times it has already checked.
    """

    def _beta(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sigma2(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sigma_bar2(self, t: torch.Tensor) -> torch.Tensor:
        return self._sigma2(torch.ones_like(t)) - self._sigma2(t)

    def beta(self, t: Time) -> torch.Tensor:
        """The rate β(t)."""
        return self._beta(as_time(t))

    def sigma2(self, t: Time) -> torch.Tensor:
        """σ²(t) = ∫₀ᵗ β: the variance accumulated from the clean side."""
        return self._sigma2(as_time(t))

    def sigma_bar2(self, t: Time) -> torch.Tensor:
        """σ̄²(t) = ∫ₜ¹ β: the variance accumulated from the degraded side."""
        return self._sigma_bar2(as_time(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return self._sigma2(as_time(t)).sqrt()

    @property
    def total(self) -> float:
        """σ²(1) = σ̄²(0) = ∫₀¹ β: the constant σ²(t) + σ̄²(t)."""
        return float(self.sigma2(1.0))

    def scaled(self, c: float) -> "Schedule":  # pragma: no cover - abstract
        """The same shape with β multiplied by ``c`` (Prop. 3.4's β → 0 limit as c → 0)."""
        raise NotImplementedError


@dataclass(frozen=True)
class SymmetricSchedule(Schedule):
    """I2SB's released symmetric schedule (I2SB Fig. 6), in continuous time.

    √β(t) = √β_min + t(√β_max − √β_min) for t ≤ ½, and β(t) = β(1 − t) for t > ½:
    smallest at both ends, largest in the middle.

    This is the continuum limit of I2SB's code, which builds 1000 per-step betas as
    a square-root linspace from β_min/1000 to β_max/1000, keeps the first half and
    mirrors it. So ``beta_max`` is where the *unmirrored* ramp would end at t = 1,
    not the peak: the peak, at t = ½, is ``peak = ((√β_min + √β_max)/2)²``
    (≈ 0.187 for the defaults 0.1, 0.3), and σ²(1) ≈ 0.141.
    """

    beta_min: float = 0.1
    beta_max: float = 0.3

    def __post_init__(self) -> None:
        # Finite as well as positive: β_max = inf gives σ² = inf and NaN bridge coefficients.
        object.__setattr__(self, "beta_min", check_real("beta_min", self.beta_min, low=0, low_open=True))
        object.__setattr__(self, "beta_max", check_real("beta_max", self.beta_max, low=0, low_open=True))

    @property
    def peak(self) -> float:
        """β(½) = ((√β_min + √β_max)/2)², the largest rate (for β_min < β_max)."""
        return ((self.beta_min**0.5 + self.beta_max**0.5) / 2) ** 2

    def _ramp(self, t: torch.Tensor) -> tuple[torch.Tensor, float]:
        # √β on the rising half: a + t(b − a) with a = √β_min, b = √β_max (slope b − a, not 2(b − a)).
        a = self.beta_min**0.5
        return a + t * (self.beta_max**0.5 - a), a

    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        # torch.where, not torch.minimum: at the tie t = ½ minimum splits the gradient in two.
        u, _ = self._ramp(torch.where(t <= 0.5, t, 1.0 - t))
        return u * u

    def _left_integral(self, t: torch.Tensor) -> torch.Tensor:
        # ∫₀ᵗ (a + τ(b − a))² dτ = (u³ − a³) / (3(b − a)) with u = a + t(b − a);
        # factoring u − a = t(b − a) gives t(u² + ua + a²)/3, which also holds for b = a.
        u, a = self._ramp(t)
        return t * (u * u + u * a + a * a) / 3.0

    def _sigma2(self, t: torch.Tensor) -> torch.Tensor:
        half = torch.full_like(t, 0.5)
        left = self._left_integral(torch.where(t <= 0.5, t, half))
        right = 2 * self._left_integral(half) - self._left_integral(torch.where(t > 0.5, 1.0 - t, half))
        return torch.where(t <= 0.5, left, right)

    def _sigma_bar2(self, t: torch.Tensor) -> torch.Tensor:
        # β is symmetric, so ∫ₜ¹ β = ∫₀^{1−t} β; computing it this way keeps full
        # relative precision near t = 1 instead of subtracting two close numbers.
        return self._sigma2(1.0 - t)

    def scaled(self, c: float) -> "SymmetricSchedule":
        c = _check_scale(c, self.beta_min, self.beta_max)
        return replace(self, beta_min=self.beta_min * c, beta_max=self.beta_max * c)


class ConstantSchedule(Schedule):
    """β(t) = β: σ²(t) = βt, σ̄²(t) = β(1 − t). With β small this is I2SB Cor. 3.5's OT displacement.

    (A plain class rather than a dataclass because the field ``beta`` would shadow
    the method ``beta(t)``; it is immutable all the same.)
    """

    __slots__ = ("_beta_value",)

    def __init__(self, beta: float = 0.1) -> None:
        object.__setattr__(self, "_beta_value", check_real("beta", beta, low=0, low_open=True))

    def __setattr__(self, name, value):
        raise AttributeError("ConstantSchedule is immutable")

    def __repr__(self) -> str:
        return f"ConstantSchedule(beta={self._beta_value!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ConstantSchedule) and other._beta_value == self._beta_value

    def __hash__(self) -> int:
        return hash(("constant", self._beta_value))

    @property
    def beta_value(self) -> float:
        return self._beta_value

    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, self._beta_value)

    def _sigma2(self, t: torch.Tensor) -> torch.Tensor:
        return self._beta_value * t

    def _sigma_bar2(self, t: torch.Tensor) -> torch.Tensor:
        return self._beta_value * (1.0 - t)

    def scaled(self, c: float) -> "ConstantSchedule":
        return ConstantSchedule(self._beta_value * _check_scale(c, self._beta_value))


def _check_scale(c, *betas: float) -> float:
    """``c`` of ``scaled(c)``: finite, > 0, and not so large (or small) that cβ leaves the floats."""
    c = check_real("scale c", c, low=0, low_open=True)
    if not all(0 < b * c < float("inf") for b in betas):
        raise ValueError(f"scale c = {c:g} takes β = {betas} to {tuple(b * c for b in betas)}: "
                         "outside the positive finite floats")
    return c


SCHEDULES = {"symmetric": SymmetricSchedule, "constant": ConstantSchedule}


def make_schedule(name: str, **kwargs) -> Schedule:
    """Build a schedule by name (``"symmetric"`` or ``"constant"``)."""
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}; got {name!r}")
    return SCHEDULES[name](**kwargs)


@dataclass(frozen=True, eq=False)
class TimeGrid:
    """The one stored grid 0 = t_0 < t_1 < … < t_N = 1 that sampling (and grid training) index.

    ``uniform``: t_n = n/N. ``quadratic``: t_n = (n/N)², denser near the clean end where
    the last steps decide fine detail (the "quadratic discretization" I2SB uses).
    Steps are read from this stored tensor, never recomputed by a formula, so the
    previous time of a step always agrees with the grid (the diffusers #9261 bug).
    """

    t: torch.Tensor
    kind: str

    # A dataclass's generated == would compare the tensor field with ==, whose truth is ambiguous.
    def __eq__(self, other) -> bool:
        return isinstance(other, TimeGrid) and other.kind == self.kind and torch.equal(other.t, self.t)

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.t.tolist())))

    @property
    def nfe(self) -> int:
        return self.t.numel() - 1

    def steps(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Pairs ``(t_n, t_{n-1})`` from n = N down to 1: the sampler's walk from degraded to clean."""
        for n in range(self.nfe, 0, -1):
            yield self.t[n], self.t[n - 1]

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training times drawn uniformly from the grid points t_1 … t_N (t_0 = 0 has σ = 0)."""
        idx = torch.randint(1, self.nfe + 1, (batch,), generator=generator)
        return self.t[idx]


def time_grid(nfe: int, grid: str = "quadratic", *, dtype: torch.dtype = torch.float64) -> TimeGrid:
    """A :class:`TimeGrid` of ``nfe`` steps (``nfe + 1`` points from 0 to 1)."""
    nfe = check_int("nfe", nfe, low=1, high=MAX_NFE, why=" (the number of sampler steps)")
    if not isinstance(grid, str) or grid not in GRIDS:
        raise ValueError(f"grid must be one of {list(GRIDS)}; got {grid!r}")
    u = torch.arange(nfe + 1, dtype=torch.float64) / nfe
    t = u if grid == "uniform" else u * u
    t[-1] = 1.0  # exact endpoint
    return TimeGrid(t=t.to(dtype), kind=grid)
