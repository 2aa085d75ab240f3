"""What every scale shares: training pairs (degrade → hash → condition) and restoration (endpoint → sample → decode).

P-I2SB Alg. 1 builds each training pair as

    y, params = degrade(x)                      (P-I2SB eq. 19, or any degradation)
    x̂, ŷ = H(x, y)                              (pseudo-hashing, eq. 11)
    cond = Conditioning.build(y, params)        (Table 3's lq / da conditions)

and Alg. 2 restores a degraded ``y`` as

    ŷ = endpoint(y)  →  x̂ = sample(model, ŷ)  →  x = J(x̂, y)     (eq. 18)

The notebooks, ``toy/`` (2D and MNIST) and ``full/`` (FFHQ 512) all call these
functions; nothing here knows which scale it serves. :func:`restore_map` is the
same pipeline with any map in place of the sampler (the exact oracles of
``counterexample.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._checks import check_finite
from .conditioning import Conditioning
from .hashing import PseudoHash
from .parameterization import Model
from .sampler import SampleResult, sample
from .bridge import Bridge
from .schedule import TimeGrid

__all__ = ["training_pairs", "degrade_pair_fn", "pool_pair_fn", "Restoration", "restore", "restore_map"]

# degrade_fn(x, generator) -> (x, y, params): x may come back changed (a flip augments both).
DegradeFn = Callable[[torch.Tensor, torch.Generator], tuple]
_NONE = Conditioning()


def training_pairs(x: torch.Tensor, y: torch.Tensor, strategy: PseudoHash, conditioning: Conditioning | None = None,
                   degradation: torch.Tensor | None = None, *, generator: torch.Generator | None = None) -> tuple:
    """One batch of bridge endpoints ``(x̂, ŷ, cond)`` from clean ``x`` and degraded ``y`` (P-I2SB Alg. 1 l. 3–4).

    ``degradation``: ``(B, P)`` parameter vectors, needed by a ``da`` condition.
    ``generator``: for random hashes (Noise); the others ignore it.
    """
    x_hat, y_hat = strategy.encode(x, y, generator=generator)
    return x_hat, y_hat, (conditioning or _NONE).build(y, degradation)


def degrade_pair_fn(degrade_fn: DegradeFn, strategy: PseudoHash, conditioning: Conditioning | None = None):
    """A ``pair_fn(x, generator)`` for ``train.training_loop`` that degrades clean batches on the fly.

    ``degrade_fn(x, generator) -> (x, y, params)`` with ``params`` a ``(B, P)`` vector or None,
    e.g. ``lambda x, g: (d := degrade(x, "ffhq512", generator=g)).x, d.y, d.params.as_vector()``.
    The degradation draws come first from the step's generator, then the hash's, so all
    strategies trained with one seed see the same degraded pairs.
    """

    def pair_fn(x: torch.Tensor, generator: torch.Generator) -> tuple:
        x, y, params = degrade_fn(x, generator)
        return training_pairs(x, y, strategy, conditioning, params, generator=generator)

    return pair_fn


def pool_pair_fn(x: torch.Tensor, y: torch.Tensor, strategy: PseudoHash, conditioning: Conditioning | None = None,
                 params: torch.Tensor | None = None):
    """A ``pair_fn(rows, generator)`` over a fixed pool of pairs ``x``, ``y`` ``(P, ...)`` (and ``params``).

    The training dataset then yields row indices (``TensorDataset(torch.arange(P))``);
    each step hashes its rows afresh (P-I2SB Alg. 1 line 4).
    """
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    if params is not None and params.shape[0] != x.shape[0]:
        raise ValueError(f"params must have one row per pair ({x.shape[0]}); got {tuple(params.shape)}")

    def pair_fn(rows: torch.Tensor, generator: torch.Generator) -> tuple:
        rows = rows.to(x.device)
        return training_pairs(x[rows], y[rows], strategy, conditioning, None if params is None else params[rows],
                              generator=generator)

    return pair_fn


@dataclass(frozen=True)
class Restoration:
    """What :func:`restore` returns.

    ``x``: the restored batch, shaped like ``y`` (on ``y``'s device; clamped if asked);
    ``x_hat``: the sampled hashed endpoints (Cat: twice the channels); ``sampled``:
    the sampler's result for the first chunk (its trajectory with ``trajectory_stride``).
    """

    x: torch.Tensor
    x_hat: torch.Tensor
    sampled: SampleResult


def restore_map(map_fn: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, strategy: PseudoHash) -> torch.Tensor:
    """P-I2SB Alg. 2 with any map ``ŷ ↦ x̂`` in place of the sampler: ``J(map_fn(endpoint(y)), y)``."""
    return strategy.decode(map_fn(strategy.endpoint(y)), y)


@torch.no_grad()
def restore(model: Model, y: torch.Tensor, schedule: Bridge, strategy: PseudoHash, *, nfe: int,
            grid: str | TimeGrid = "quadratic", ot_ode: bool = False, eta: float = 1.0,
            boot_noise: bool = False, conditioning: Conditioning | None = None,
            degradation: torch.Tensor | None = None, seed: int | Sequence[int] = 0,
            callback: Callable[..., None] | None = None, trajectory_stride: int = 0, chunk: int | None = None,
            clamp: tuple[float, float] | None = None) -> Restoration:
    """Restore degraded ``y`` ``(N, ...)`` (P-I2SB Alg. 2): ``ŷ = endpoint(y)`` → ``sampler.sample`` → ``decode``.

    ``model``: the bridge (a parameterization, or a bare network read as ε), run on its
    own device; ``y`` may live elsewhere (results come back to ``y``'s device).
    ``schedule``: an I2SB schedule or a bridge family; ``eta``: the sampler's noise dial
    (1: I2SB Alg. 2, 0: the implicit step) and ``boot_noise`` (see ``sampler.sample``).
    ``conditioning`` + ``degradation``: the Table 3 condition (at test time the
    ``da`` vectors come from a degradation estimator). Sampling noise: one generator
    on the model's device seeded with ``seed``, drawn through chunk after chunk of
    ``chunk`` samples (None: all at once); or, with one seed per row of ``y``, one
    generator per sample, so that a sample's restoration does not depend on which batch,
    chunk or rank it was restored in. ``callback(t=, x_t=, pred_x0=, rows=)`` is
    the sampler's per-step callback with the chunk's ``rows`` (a slice of ``y``) added;
    nothing is moved to the host per step. ``clamp``: clamp the decoded ``x`` to (lo, hi).
    """
    check_finite("y", y)
    check_finite("degradation", degradation)  # an estimator's NaN vector would condition every step on NaN
    per_sample = isinstance(seed, (list, tuple))
    if any(type(s) is not int or s < 0 for s in (seed if per_sample else [seed])):
        raise ValueError(f"seed must be an int >= 0 or a list of them (one per row of y); got {seed!r}")
    if chunk is not None and (type(chunk) is not int or chunk < 1):
        raise ValueError(f"chunk must be None or an int >= 1; got {chunk!r}")
    if y.ndim < 2 or y.shape[0] == 0:
        raise ValueError(f"y must be a non-empty batch (N, ...); got shape {tuple(y.shape)}")
    if per_sample and len(seed) != y.shape[0]:
        raise ValueError(f"seed: one per sample needs {y.shape[0]} seeds (y's batch); got {len(seed)}")
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    device = params[0].device if params else y.device
    seeded = [torch.Generator(device=device).manual_seed(s) for s in (seed if per_sample else [seed])]
    generator = seeded if per_sample else seeded[0]
    conditioning = conditioning or _NONE
    step = y.shape[0] if chunk is None else chunk
    xs, x_hats, first = [], [], None
    for start in range(0, y.shape[0], step):
        rows = slice(start, min(start + step, y.shape[0]))
        y_c = y[rows].to(device)
        d_c = None if degradation is None else degradation[rows].to(device)
        chunk_callback = None if callback is None else \
            (lambda rows=rows, **kw: callback(**kw, rows=rows))
        result = sample(model, strategy.endpoint(y_c), schedule, nfe=nfe, grid=grid, ot_ode=ot_ode, eta=eta,
                        boot_noise=boot_noise,
                        cond=conditioning.build(y_c, d_c), generator=generator[rows] if per_sample else generator,
                        callback=chunk_callback, trajectory_stride=trajectory_stride if start == 0 else 0)
        first = result if first is None else first
        x = strategy.decode(result.x0, y_c)
        xs.append((x if clamp is None else x.clamp(*clamp)).to(y.device))
        x_hats.append(result.x0.to(y.device))
    return Restoration(torch.cat(xs), torch.cat(x_hats), first)
