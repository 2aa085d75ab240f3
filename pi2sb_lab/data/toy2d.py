"""2D toy problems for blind restoration: clean distributions, a blind degradation, metrics.

The 2D analogue of P-I2SB's setting (§4.1): each clean point ``x`` gets ``M``
independently degraded partners ``y_ij`` (random rotation, scale, shift and
Gaussian noise), which is exactly the multi-partner case of Cor. 4.2 that the
pseudo-hashing strategies address.

Every sampler takes a ``torch.Generator`` (all randomness flows through it, so
a seeded generator reproduces the draw) and returns ``Points2D(points, labels)``:
``points`` ``(N, 2)`` of ``dtype`` (float32 by default) and ``labels`` ``(N,)``
int64, the mixture component each point came from (cluster, moon, ring).
Tensors are made on the CPU; move them with ``.to(device)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = [
    "Points2D",
    "cluster_centers",
    "clusters",
    "moons",
    "rings",
    "DISTRIBUTIONS",
    "sample",
    "DegradationParams2D",
    "Degraded2D",
    "BlindDegradation2D",
    "cluster_accuracy",
    "sliced_wasserstein2",
]


class Points2D(NamedTuple):
    """A 2D sample: ``points`` ``(N, 2)`` and the component ``labels`` ``(N,)`` (int64)."""

    points: torch.Tensor
    labels: torch.Tensor


def _check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")


def cluster_centers(k: int = 4, *, radius: float = 2.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``k`` centers of ``clusters``: evenly spaced on a circle, the first at angle 0. ``(k, 2)``."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).to(dtype)


def clusters(
    n: int,
    *,
    k: int = 4,
    radius: float = 2.0,
    std: float = 0.15,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Points2D:
    """A mixture of ``k`` equal-weight isotropic Gaussians (std ``std``) at ``cluster_centers(k, radius)``.

    ``labels`` are the cluster indices, drawn i.i.d. uniform, needed for the
    cluster-assignment accuracy (``cluster_accuracy``).
    """
    _check_n(n)
    if std < 0:
        raise ValueError(f"std must be >= 0; got {std}")
    labels = torch.randint(k, (n,), generator=generator)
    centers = cluster_centers(k, radius=radius, dtype=torch.float64)
    points = centers[labels] + std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return Points2D(points.to(dtype), labels)


def moons(
    n: int,
    *,
    noise: float = 0.05,
    scale: float = 1.5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Points2D:
    """Two interleaving half circles, centred at the origin and scaled by ``scale``.

    Upper moon (label 0): ``(cos θ, sin θ)``; lower moon (label 1):
    ``(1 − cos θ, ½ − sin θ)``, ``θ ~ U[0, π]``; then shifted by ``(−½, −¼)``
    so the pair is centred, scaled, and blurred by Gaussian noise of std
    ``noise`` (in the scaled units).
    """
    _check_n(n)
    labels = torch.randint(2, (n,), generator=generator)
    theta = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    upper = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    lower = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], dim=1)
    points = torch.where(labels[:, None] == 0, upper, lower) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    points = scale * points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return Points2D(points.to(dtype), labels)


def rings(
    n: int,
    *,
    radii: tuple[float, ...] = (1.0, 2.0),
    std: float = 0.05,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Points2D:
    """Concentric circles of the given ``radii`` (label = ring index), uniform in angle, radial noise ``std``.

    Rings are chosen with probability proportional to their radius, so the
    density along the arc is the same on every ring.
    """
    _check_n(n)
    if len(radii) == 0:
        raise ValueError("radii must not be empty")
    weights = torch.tensor(radii, dtype=torch.float64)
    labels = torch.multinomial(weights, n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.long)
    theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    r = weights[labels] + std * torch.randn(n, generator=generator, dtype=torch.float64)
    points = r[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    return Points2D(points.to(dtype), labels)


DISTRIBUTIONS: dict[str, Callable[..., Points2D]] = {"clusters": clusters, "moons": moons, "rings": rings}


def sample(name: str, n: int, **kwargs) -> Points2D:
    """Draw ``n`` points from the distribution registered as ``name`` (see ``DISTRIBUTIONS``)."""
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown 2D distribution {name!r}; valid names: {', '.join(DISTRIBUTIONS)}")
    return DISTRIBUTIONS[name](n, **kwargs)


# --- the blind degradation -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DegradationParams2D:
    """Per-sample parameters of ``BlindDegradation2D``; every field has ``N·M`` rows.

    ``angle`` (radians), ``scale``, ``noise`` (std): ``(N·M,)``; ``shift``: ``(N·M, 2)``.
    """

    angle: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    noise: torch.Tensor

    def as_vector(self) -> torch.Tensor:
        """``(N·M, 5)`` = ``[angle, scale, shift_x, shift_y, noise]``: a degradation condition vector."""
        return torch.cat([self.angle[:, None], self.scale[:, None], self.shift, self.noise[:, None]], dim=1)


@dataclasses.dataclass(frozen=True)
class Degraded2D:
    """Output of ``BlindDegradation2D``.

    ``x``: the clean points repeated, ``(N·M, 2)``; ``y``: their degraded
    partners, ``(N·M, 2)``; ``params``: what was drawn for each row;
    ``source``: ``(N·M,)`` index of the clean point each row came from. Rows
    are grouped by clean point: rows ``i·M … i·M + M − 1`` share ``x[i]``, so
    clean labels follow with ``labels[source]``.
    """

    x: torch.Tensor
    y: torch.Tensor
    params: DegradationParams2D
    source: torch.Tensor


def _check_range(name: str, value: tuple[float, float], *, minimum: float | None = None) -> None:
    lo, hi = value
    if lo > hi:
        raise ValueError(f"{name} must be (low, high) with low <= high; got {value}")
    if minimum is not None and lo < minimum:
        raise ValueError(f"{name} must lie in [{minimum}, ∞); got {value}")


@dataclasses.dataclass(frozen=True)
class BlindDegradation2D:
    """``y = s · R(θ) x + b + δ ε`` with ``θ, s, b, δ`` drawn independently per partner.

    ``R(θ)`` rotates about the origin; ``θ ~ U(angle_range)`` radians,
    ``s ~ U(scale_range)``, each coordinate of ``b ~ U(shift_range)``,
    ``δ ~ U(noise_range)`` and ``ε ~ N(0, I)``: the 2D stand-in for eq. 19's
    random blur/downsample/noise, with the parameters unknown to the restorer
    (blind).

    The defaults are tuned to ``clusters()`` (4 clusters on radius 2, std
    0.15): one clean point's partners spread over about one unit (±0.4 rad is
    ±0.8 along the arc, ±0.25 in scale is ±0.5 radially, plus the shift), so the
    same ``x`` maps to clearly different ``y``'s; yet the angular displacement
    stays well below the π/4 half-gap between clusters, so the cluster of ``x``
    is still identifiable from ``y``: restorable in principle.
    """

    angle_range: tuple[float, float] = (-0.4, 0.4)
    scale_range: tuple[float, float] = (0.75, 1.25)
    shift_range: tuple[float, float] = (-0.25, 0.25)
    noise_range: tuple[float, float] = (0.0, 0.05)

    def __post_init__(self) -> None:
        _check_range("angle_range", self.angle_range)
        _check_range("scale_range", self.scale_range, minimum=0.0)
        _check_range("shift_range", self.shift_range)
        _check_range("noise_range", self.noise_range, minimum=0.0)

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None, partners: int = 1) -> Degraded2D:
        """Degrade each of the ``N`` clean points ``x`` ``(N, 2)`` into ``partners`` (``M``) independent ``y``'s."""
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"x must have shape (N, 2); got {tuple(x.shape)}")
        if partners < 1:
            raise ValueError(f"partners must be >= 1; got {partners}")
        rows = x.shape[0] * partners
        source = torch.arange(x.shape[0]).repeat_interleave(partners)
        x_rep = x[source]

        def uniform(shape, value_range):
            lo, hi = value_range
            return lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=x.dtype)

        angle = uniform((rows,), self.angle_range)
        scale = uniform((rows,), self.scale_range)
        shift = uniform((rows, 2), self.shift_range)
        noise = uniform((rows,), self.noise_range)
        eps = torch.randn(rows, 2, generator=generator, dtype=x.dtype)

        cos, sin = torch.cos(angle), torch.sin(angle)
        rotated = torch.stack([cos * x_rep[:, 0] - sin * x_rep[:, 1], sin * x_rep[:, 0] + cos * x_rep[:, 1]], dim=1)
        y = scale[:, None] * rotated + shift + noise[:, None] * eps
        return Degraded2D(x_rep, y, DegradationParams2D(angle, scale, shift, noise), source)


# --- evaluation helpers -------------------------------------------------------------


def cluster_accuracy(points: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> float:
    """Fraction of ``points`` ``(N, 2)`` whose nearest of ``centers`` ``(k, 2)`` is their true label ``(N,)``."""
    if points.shape[0] != labels.shape[0]:
        raise ValueError(f"points and labels differ in length: {tuple(points.shape)} vs {tuple(labels.shape)}")
    if points.shape[0] == 0:
        raise ValueError("cluster_accuracy of an empty set is undefined")
    assigned = torch.cdist(points.to(centers.dtype), centers).argmin(dim=1)
    return (assigned == labels.to(assigned.device)).double().mean().item()


def sliced_wasserstein2(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    n_projections: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Squared sliced 2-Wasserstein distance between equal-size clouds ``a``, ``b`` ``(N, D)``.

    ``SW₂²(a, b) = E_u[W₂²(u·a, u·b)]`` over directions ``u`` uniform on the
    unit sphere, estimated with ``n_projections`` random directions; each 1D
    ``W₂²`` between empirical measures of equal size is the mean squared gap
    between the sorted projections. Returns a 0-d tensor (differentiable).

    Scale to keep in mind: for a pure shift ``b = a + s``, every projection
    gives exactly ``(u·s)²``, whose mean over the sphere is ``‖s‖² / D`` (half of
    ``‖s‖²`` in 2D), not ``‖s‖²``.
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be (N, D) clouds of the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1; got {n_projections}")
    directions = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    directions = (directions / directions.norm(dim=0, keepdim=True)).to(a)
    proj_a = torch.sort(a @ directions, dim=0).values  # (N, P)
    proj_b = torch.sort(b.to(a) @ directions, dim=0).values
    return (proj_a - proj_b).square().mean()
