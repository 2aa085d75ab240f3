"""The Pseudo-Hashing Module (P-I2SB §4.2, eq. 11–14 and 18).

Why it exists: P-I2SB Cor. 4.2 says that two training pairs ``(x, y1)`` and
``(x, y2)`` with the same clean ``x`` cannot both be Dirac-pair bridges of one
SDE (Thm. 4.1), because the solution from the single start ``x`` is unique. A
pseudo-hash ``H(x, y)`` moves the clean endpoint to ``x̂`` so that each partner
gets its own start, the pairs ``(x̂, ŷ)`` are fed to the bridge instead of
``(x, y)``, and the inverse ``J(x̂, y)`` (eq. 18) maps the sampled ``x̂`` back.

Every strategy has

- ``encode(x, y) -> HashedPair(x_hat, y_hat)``: the bridge endpoints, ``x_hat``
  at ``t = 0`` and ``y_hat`` at ``t = 1`` (P-I2SB eq. 11, Alg. 1 line 4);
- ``endpoint(y) -> y_hat``: the ``t = 1`` endpoint alone, the sampler's start
  at restoration time (Alg. 2 input), when no ``x`` is known;
- ``decode(x_hat, y) -> x``: the inverse (eq. 18, Alg. 2 line 6), where ``y``
  is the raw degraded input, not ``y_hat``;
- ``channels(c) -> int``: how many channels the endpoints (and so the network's
  input and output) need when ``x`` has ``c``.

The channel axis is dim 1 both for images ``(N, C, H, W)`` and for 2D points
``(N, D)``, so each strategy serves both without a special case.

Sign conventions (the paper disagrees with itself; we pick the versions that
make ``decode`` invert ``encode``):

- **Res**: eq. 11 writes ``x̂ = x − y`` while eq. 13 defines the residual
  ``R = I_lq − I_hq``, and eq. 18 decodes with ``x̂ − y``, which inverts
  neither (it gives ``x − 2y`` or ``−x``). We use eq. 13, ``x̂ = y − x``,
  because it is the version the §4.2 geometry argues for (Fig. 3a): the
  displacement from ``x̂`` to the other endpoint ``y`` is then ``y − x̂ = x``
  for every partner ``y`` of ``x``, the "consistent direction and distance
  between the hashed endpoints". Its inverse is ``x = y − x̂``.
- **Noise**: §4.2's text writes ``I_hq^noise = I_lq^d + λ_d ε``, i.e. noise
  on the *degraded* image, which contradicts both its own name and eq. 11
  (``x + σ(y) ε``). We follow eq. 11: ``x̂ = x + λ(y) ε``, the inverse being a
  denoiser at level ``λ(y)`` (eq. 18, ``Denoise(x̂; σ(y))``).

(Longer than ~350 lines: the four strategies, Noise's levels and the exact 2D
denoiser belong together, and the sign conventions above need their space.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

import torch

from ._checks import check_int, check_real

__all__ = [
    "HashedPair",
    "PseudoHash",
    "Origin",
    "Cat",
    "Res",
    "Noise",
    "ConstantLevel",
    "LQStdLevel",
    "Denoiser",
    "EmpiricalPosteriorDenoiser",
    "STRATEGIES",
    "get_strategy",
]


class HashedPair(NamedTuple):
    """The bridge endpoints after hashing: ``x_hat`` (``t = 0``), ``y_hat`` (``t = 1``).

    A named tuple so that ``x_hat, y_hat = strategy.encode(x, y)`` unpacks.
    """

    x_hat: torch.Tensor
    y_hat: torch.Tensor


def _check_batched(name: str, tensor: torch.Tensor) -> None:
    if tensor.dim() < 2:
        raise ValueError(
            f"{name} must be batched with the channel axis at dim 1, (N, C, H, W) or (N, D); "
            f"got shape {tuple(tensor.shape)}"
        )


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    _check_batched("x", x)
    _check_batched("y", y)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape (a clean sample and its degraded partner); "
            f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )


class PseudoHash:
    """Base class of the pseudo-hashing strategies ``H`` / ``J`` (P-I2SB eq. 11 / 18).

    Subclasses override ``encode`` and ``decode``, and ``endpoint`` / ``channels``
    where the endpoints change shape (Cat). ``generator`` is accepted by every
    ``encode`` so that a training loop can call all strategies the same way;
    only the random ones (Noise) use it.
    """

    name: ClassVar[str] = ""

    def encode(self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None) -> HashedPair:
        raise NotImplementedError

    def decode(self, x_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def endpoint(self, y: torch.Tensor) -> torch.Tensor:
        """The ``t = 1`` endpoint ``ŷ`` for a degraded batch ``y`` (the sampler's start)."""
        _check_batched("y", y)
        return y

    def channels(self, c: int) -> int:
        """Channels of ``x̂`` and ``ŷ`` when ``x`` and ``y`` have ``c``."""
        return c

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Origin(PseudoHash):
    """No hashing, plain I2SB: ``x̂ = x``, ``ŷ = y`` (eq. 11 and 18, first row).

    With several partners per ``x`` this is exactly the infeasible case of
    P-I2SB Cor. 4.2; it is the baseline the other strategies are compared to.
    """

    name = "origin"

    def encode(self, x, y, *, generator=None):
        _check_pair(x, y)
        return HashedPair(x, y)

    def decode(self, x_hat, y):
        _check_pair(x_hat, y)
        return x_hat


class Cat(PseudoHash):
    """Cat-I2SB: ``x̂ = x ⊕ y``, ``ŷ = y ⊕ y`` along channels (P-I2SB eq. 12).

    The second half of both endpoints is ``y``, so the bridge only has to move
    the first half; decoding keeps the first ``c`` channels (eq. 18,
    ``x̂[:3]`` for RGB). Endpoints have ``2c`` channels.
    """

    name = "cat"

    def encode(self, x, y, *, generator=None):
        _check_pair(x, y)
        return HashedPair(torch.cat([x, y], dim=1), torch.cat([y, y], dim=1))

    def endpoint(self, y):
        _check_batched("y", y)
        return torch.cat([y, y], dim=1)

    def decode(self, x_hat, y):
        _check_batched("x_hat", x_hat)
        _check_batched("y", y)
        c = y.shape[1]
        # x_hat must be the 2c-channel endpoint matching the raw c-channel y.
        expected = (y.shape[0], 2 * c, *y.shape[2:])
        if tuple(x_hat.shape) != expected:
            raise ValueError(
                f"Cat.decode expects x_hat of shape {expected} (twice the channels of the raw y); "
                f"got x_hat {tuple(x_hat.shape)} and y {tuple(y.shape)}"
            )
        return x_hat[:, :c]

    def channels(self, c):
        return 2 * c


class Res(PseudoHash):
    """Res-I2SB: ``x̂ = R = y − x``, ``ŷ = y``; decode ``x = y − x̂`` (P-I2SB eq. 13).

    Sign: eq. 13 (``R = I_lq − I_hq``) rather than eq. 11 (``x − y``), and the
    true inverse ``y − x̂`` rather than eq. 18's ``x̂ − y`` (which inverts
    neither); see the module docstring. With this sign the endpoint
    displacement ``ŷ − x̂ = x`` is the same for all partners of ``x`` (Fig. 3a).
    The round trip is exact up to one float rounding of ``y − x``.
    """

    name = "res"

    def encode(self, x, y, *, generator=None):
        _check_pair(x, y)
        return HashedPair(y - x, y)

    def decode(self, x_hat, y):
        _check_pair(x_hat, y)
        return y - x_hat


# --- Noise-I2SB: noise levels and denoisers ---------------------------------


@dataclasses.dataclass(frozen=True)
class ConstantLevel:
    """``λ(y) = λ0`` for every sample: the simplest level, the default of ``Noise``.

    A constant gives every partner its own start for one draw of ε, and keeps the
    decoder's job the same for all inputs. But training re-draws ε at every step, so
    with a constant level the start carries no information about *which* partner it
    belongs to: what a trained forward map can reach is Origin's forced error again
    (measured in ``counterexample.py`` / notebook 02). Use a y-dependent level
    (e.g. :class:`LQStdLevel`) for a hash that actually depends on the partner.
    """

    value: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_real("noise level", self.value, low=0))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return torch.full((y.shape[0],), float(self.value), dtype=y.dtype, device=y.device)


@dataclasses.dataclass(frozen=True)
class LQStdLevel:
    """``λ(y) = scale · std(y_n)`` per sample: a level "directly related to I_lq" (§4.2).

    The standard deviation is over all non-batch entries of each sample, so a
    flat (heavily blurred) image gets less noise than a busy one. Because it is
    a function of ``y`` alone, ``decode`` recomputes the same level at
    restoration time.
    """

    scale: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_real("LQStdLevel scale", self.scale, low=0))

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[0] == 0:  # an empty batch has an empty level, as Origin has empty endpoints
            return y.new_zeros(0)
        return self.scale * y.reshape(y.shape[0], -1).std(dim=1, correction=0)


@runtime_checkable
class Denoiser(Protocol):
    """Anything that estimates the clean sample from a noisy one at a known level.

    ``x_noisy``: ``(N, ...)``; ``sigma``: ``(N,)``, the noise std of each sample
    (``x_noisy = x + sigma ε``). Returns the estimate, shaped like ``x_noisy``.
    Implementations: ``EmpiricalPosteriorDenoiser`` below (exact, small sets); for images,
    ``diffusion.DDIMDenoiser`` (P-I2SB eq. 18's DDIM, in ``diffusion/editing.py``) and the MNIST
    toy's learned one-step ``nets.denoiser.ImageDenoiser``.
    """

    def __call__(self, x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class EmpiricalPosteriorDenoiser:
    """Exact posterior mean ``E[x | x + σε = x̃]`` for an empirical prior (Tweedie).

    With the prior ``p(x) = (1/K) Σ_i δ(x − x_i)`` over the clean ``points``
    ``(K, ...)`` and Gaussian noise of std ``σ``, the posterior is the point set
    itself with weights ``w_i ∝ exp(−‖x̃ − x_i‖² / (2σ²))``, so the MMSE
    estimate is ``Σ_i w_i x_i``. The weights are a softmax of those logits
    (the nearest point's logit is pinned at 0, so nothing overflows or turns
    into nan however small σ is); at ``σ = 0`` the estimate is the nearest
    point, the ``σ → 0`` limit, with ties sharing the mass equally.
    Squared distances are summed from explicit differences rather than
    ``‖a‖² + ‖b‖² − 2ab``, which would cancel catastrophically for near points.
    Queries are processed in chunks to bound memory at ``chunk · K · D``.
    """

    def __init__(self, points: torch.Tensor, *, chunk: int = 1024) -> None:
        if not torch.is_tensor(points) or not points.is_floating_point():
            raise TypeError(f"points must be a floating-point tensor (K, ...); got "
                            f"{points.dtype if torch.is_tensor(points) else type(points).__name__}")
        if points.dim() < 2 or points.shape[0] == 0:
            raise ValueError(f"points must be a non-empty batch (K, ...); got shape {tuple(points.shape)}")
        if not bool(torch.isfinite(points).all()):
            raise ValueError("points must be finite; they hold NaN or inf")
        self.points = points
        self.chunk = check_int("chunk", chunk, low=1, why=" (queries per block; memory is chunk·K·D)")

    def __call__(self, x_noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if tuple(x_noisy.shape[1:]) != tuple(self.points.shape[1:]):
            raise ValueError(
                f"x_noisy samples must be shaped like the clean points; "
                f"got x_noisy {tuple(x_noisy.shape)} and points {tuple(self.points.shape)}"
            )
        n = x_noisy.shape[0]
        sigma = torch.as_tensor(sigma, dtype=x_noisy.dtype, device=x_noisy.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(n)
        if sigma.shape != (n,):
            raise ValueError(f"sigma must have shape ({n},) or be a scalar; got {tuple(sigma.shape)}")
        if not bool((torch.isfinite(sigma) & (sigma >= 0)).all()):  # NaN fails both
            raise ValueError(f"sigma must be finite and >= 0; got {sigma.tolist()[:8]}")

        flat_points = self.points.reshape(self.points.shape[0], -1).to(x_noisy)
        flat_query = x_noisy.reshape(n, -1)
        out = []
        for start in range(0, n, self.chunk):
            q = flat_query[start : start + self.chunk]
            s = sigma[start : start + self.chunk]
            dist2 = (q[:, None, :] - flat_points[None, :, :]).square().sum(dim=-1)  # (n_chunk, K)
            # Softmax is shift-invariant: measuring from the nearest point keeps its logit at
            # exactly 0, so even when σ² underflows the others go to -inf, never all of them.
            excess = dist2 - dist2.min(dim=1, keepdim=True).values
            logits = -excess / (2.0 * s[:, None].square())
            # σ = 0 makes 0/0 at the nearest point(s): that is the σ → 0 limit, all mass there.
            logits = torch.where(excess == 0, torch.zeros_like(logits), logits)
            weights = torch.softmax(logits, dim=1)
            out.append(weights @ flat_points)
        return torch.cat(out, dim=0).reshape(x_noisy.shape)

    def __repr__(self) -> str:
        return f"EmpiricalPosteriorDenoiser(points={tuple(self.points.shape)})"


@dataclasses.dataclass(frozen=True)
class Noise(PseudoHash):
    """Noise-I2SB: ``x̂ = x + λ(y) ε``, ``ŷ = y``; decode ``Denoise(x̂; λ(y))``.

    P-I2SB eq. 11 (fourth row), eq. 14 and eq. 18. The sign slip of §4.2's
    text (noise on ``I_lq``) is not followed; see the module docstring.

    ``level``: a float (constant ``λ0``, wrapped in ``ConstantLevel``) or any
    callable ``level(y) -> (N,)`` such as ``LQStdLevel``. Default: the constant
    ``λ0 = 0.05`` (images live in [-1, 1], so this is "lightly adding noise").
    ``denoiser``: a ``Denoiser``, needed by ``decode`` only; swap it in later
    with ``dataclasses.replace(noise, denoiser=...)``.

    ``encode`` draws ε from ``generator`` (so a seeded generator reproduces it),
    on the generator's device, then moves it to ``x``'s device.
    """

    level: float | Callable[[torch.Tensor], torch.Tensor] = 0.05
    denoiser: Denoiser | None = None

    name: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        if isinstance(self.level, (int, float)):
            object.__setattr__(self, "level", ConstantLevel(float(self.level)))
        if not callable(self.level):
            raise TypeError(f"level must be a float or a callable level(y) -> (N,); got {self.level!r}")

    def noise_level(self, y: torch.Tensor) -> torch.Tensor:
        """``λ(y)``, checked to be one level per sample: shape ``(N,)``."""
        lam = torch.as_tensor(self.level(y), dtype=y.dtype, device=y.device)
        if lam.shape != (y.shape[0],):
            raise ValueError(f"level(y) must return shape ({y.shape[0]},); got {tuple(lam.shape)}")
        return lam

    def encode(self, x, y, *, generator=None):
        _check_pair(x, y)
        lam = self.noise_level(y)
        device = generator.device if generator is not None else x.device
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
        lam = lam.reshape(-1, *([1] * (x.dim() - 1)))  # broadcast (N,) over channels and pixels
        return HashedPair(x + lam * eps, y)

    def decode(self, x_hat, y):
        _check_pair(x_hat, y)
        if self.denoiser is None:
            raise ValueError(
                "Noise.decode needs a denoiser at level λ(y) (P-I2SB eq. 18): build "
                "Noise(level=..., denoiser=...) with any callable denoiser(x_noisy, sigma) -> x, "
                "e.g. EmpiricalPosteriorDenoiser(clean_points) for 2D toys or "
                "pi2sb_lab.diffusion.DDIMDenoiser(prior, VPSchedule()) for images, "
                "or use dataclasses.replace(noise, denoiser=...)"
            )
        return self.denoiser(x_hat, self.noise_level(y))


STRATEGIES: dict[str, type[PseudoHash]] = {cls.name: cls for cls in (Origin, Cat, Res, Noise)}


def get_strategy(name: str, **kwargs) -> PseudoHash:
    """Build a strategy by name: ``"origin"``, ``"cat"``, ``"res"``, ``"noise"``.

    Case-insensitive; the paper's spellings ``"Cat-I2SB"`` etc. are accepted
    too. ``kwargs`` go to the constructor (only Noise takes any).
    """
    if not isinstance(name, str):
        raise TypeError(f"strategy name must be a string, one of {', '.join(STRATEGIES)}; got {name!r}")
    key = name.strip().lower().removesuffix("-i2sb")
    if key not in STRATEGIES:
        raise ValueError(f"unknown pseudo-hashing strategy {name!r}; valid names: {', '.join(STRATEGIES)}")
    return STRATEGIES[key](**kwargs)
