"""Corollary 4.2 made executable: one clean start with several partners (P-I2SB §3.1, §4.1).

P-I2SB Thm. 4.1 builds one bridge per Dirac pair ``(x, y)``; Cor. 4.2 says two
pairs ``(x, y1)``, ``(x, y2)`` cannot both be such bridges of one process,
because the solution from the single start ``x`` is unique. In the OT-ODE limit
``β → 0`` (I2SB Prop. 3.4) the process is a deterministic flow, so it is a map
``T``, and §3.1's Monge example applies: ``T`` sends all the mass at ``x`` to
one point ``z = T(x)``, never to both partners. The smallest mean squared
endpoint error any map can reach is

    min_z (1/M) Σ_j ‖z − y_j‖² = (1/M) Σ_j ‖y_j − ȳ‖²    at z = ȳ,        (*)

the spread of the partners about their mean; it is also ``min_T W₂²`` between
``T#δ_x = δ_z`` and the partners' empirical measure. For two partners it is
``‖y1 − y2‖²/4``. Pseudo-hashing (P-I2SB eq. 11) gives every pair its own
start ``x̂``, so (*) drops to 0 and a one-to-one map exists — for Cat and Res.
Noise's start is random and, with a constant level, independent of the
partner, so what a network can learn from fresh draws is still (*)
(``expected_forced_error``).

What Cor. 4.2 does *not* say: that restoring is impossible. The restoring map
runs from ``ŷ`` to ``x̂``; it is ``y ↦ J(sampler(ŷ), y)``, a function of ``y``
alone for every strategy, so its floor is (*) with the roles swapped — the
spread of the clean points that share one ``y`` — and no hashing changes it.
For one ``x`` with distinct partners that floor is 0 (Origin can restore); for
several clean points sharing a partner it is positive for every strategy.

``PairSet`` rows are pairs; ``forced_error`` is (*) for any starts/ends;
``forward_error`` / ``restoring_error`` run a map and report its error next to
that floor. The maps come from ``PairPosteriorOracle`` (the exact minimiser of
the bridge loss on a finite pair set: a perfectly trained network) or from
``experiments.twod.learned_map`` (an MLP bridge trained by ``train.training_loop``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from .bridge import posterior
from .hashing import Noise, PseudoHash
from .parameterization import X0Param
from .pipeline import restore_map
from .sampler import SampleResult, sample
from .schedule import Schedule

__all__ = ["PairSet", "one_to_many", "shared_partners", "monge_example", "ForcedError", "forced_error",
           "expected_forced_error", "PairPosteriorOracle", "check_symmetric", "oracle_sampler", "oracle_forward_map",
           "oracle_restoring_map", "MapError", "forward_error", "restoring_error"]

Map = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PairSet:
    """Training pairs ``(x[p], y[p])``, ``p = 0 … P−1``, both ``(P, D)``.

    ``source``: ``(P,)`` index of each row's clean point among the distinct
    ones; rows are grouped by it, as in ``Degraded2D``.
    """

    x: torch.Tensor
    y: torch.Tensor
    source: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 2 or self.x.shape != self.y.shape:
            raise ValueError(
                f"x and y must both be (P, D) with the same shape (row p is the pair (x[p], y[p])); "
                f"got x {tuple(self.x.shape)} and y {tuple(self.y.shape)}"
            )
        if self.source.shape != (self.x.shape[0],):
            raise ValueError(f"source must have shape ({self.x.shape[0]},); got {tuple(self.source.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]


def _as_points(name: str, value: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value)
    if value.dim() == 1:
        value = value[None]
    if value.dim() != 2 or value.shape[0] == 0:
        raise ValueError(f"{name} must be a point (D,) or a non-empty set of points (K, D); got {tuple(value.shape)}")
    return value


def one_to_many(x: torch.Tensor, partners: torch.Tensor) -> PairSet:
    """One clean point ``x`` ``(D,)`` with ``M`` degraded ``partners`` ``(M, D)``: pairs ``(x, y_j)``.

    The multi-partner case of Cor. 4.2 (P-I2SB §4.1, ``M`` LQ images per HQ one).
    """
    x, partners = _as_points("x", x), _as_points("partners", partners)
    if x.shape[0] != 1 or x.shape[1] != partners.shape[1]:
        raise ValueError(
            f"x must be one point of the partners' dimension {partners.shape[1]}; got x {tuple(x.shape)} "
            f"and partners {tuple(partners.shape)}"
        )
    m = partners.shape[0]
    return PairSet(x.expand(m, -1).clone(), partners.clone(), torch.zeros(m, dtype=torch.long))


def shared_partners(clean: torch.Tensor, partners: torch.Tensor) -> PairSet:
    """Every one of ``K`` clean points ``(K, D)`` paired with every one of ``M`` partners ``(M, D)``.

    ``K·M`` rows, row ``i·M + j`` = ``(x_i, y_j)``: each ``x`` has ``M`` partners
    (the forward direction fails) and each ``y`` has ``K`` clean partners (the
    restoring direction has a positive floor, whatever the hashing).
    """
    clean, partners = _as_points("clean", clean), _as_points("partners", partners)
    if clean.shape[1] != partners.shape[1]:
        raise ValueError(f"clean and partners must have the same dimension; got {tuple(clean.shape)} and "
                         f"{tuple(partners.shape)}")
    k, m = clean.shape[0], partners.shape[0]
    source = torch.arange(k).repeat_interleave(m)
    return PairSet(clean[source].clone(), partners.repeat(k, 1), source)


def monge_example(gap: float = 2.0, *, dtype: torch.dtype = torch.float64) -> PairSet:
    """P-I2SB §3.1: ``δ_x`` to ``½δ_{y1} + ½δ_{y2}``; ``x = (−0.75, 0)``, ``y1,2 = (0.75, ±gap/2)``.

    Its forced error (*) is ``‖y1 − y2‖²/4 = gap²/4`` per pair.
    """
    x = torch.tensor([-0.75, 0.0], dtype=dtype)
    partners = torch.tensor([[0.75, gap / 2], [0.75, -gap / 2]], dtype=dtype)
    return one_to_many(x, partners)


@dataclasses.dataclass(frozen=True)
class ForcedError:
    """Floor (*) of the mean squared error of any map from ``starts`` to ``ends``.

    ``mse``: the floor; ``per_pair``: ``(P,)`` each row's ``‖end − group mean‖²``;
    ``best_ends``: ``(P, D)`` the optimal map's value at each row's start (the
    mean end of all rows with that start); ``group``: ``(P,)`` index of each
    row's distinct start; ``n_starts``: how many distinct starts;
    ``one_to_one``: every start has a single end, so a map reaches every pair.
    """

    mse: float
    per_pair: torch.Tensor
    best_ends: torch.Tensor
    group: torch.Tensor
    n_starts: int
    one_to_one: bool


def forced_error(starts: torch.Tensor, ends: torch.Tensor) -> ForcedError:
    """The floor (*) over all maps ``T`` of ``(1/P) Σ_p ‖T(starts[p]) − ends[p]‖²``.

    ``starts`` ``(P, ...)`` and ``ends`` ``(P, ...)`` (flattened per row). Rows
    are grouped by bitwise-equal starts — hashing either leaves a start exactly
    as it was (Origin) or moves it — and the best map sends each start to the
    mean of its group's ends.
    """
    if starts.dim() < 2 or ends.dim() < 2 or starts.shape[0] != ends.shape[0] or starts.shape[0] == 0:
        raise ValueError(f"starts and ends must be non-empty batches with one row per pair; got "
                         f"{tuple(starts.shape)} and {tuple(ends.shape)}")
    flat_starts, flat_ends = starts.reshape(starts.shape[0], -1), ends.reshape(ends.shape[0], -1)
    _, group = torch.unique(flat_starts, dim=0, return_inverse=True)
    n_starts = int(group.max()) + 1
    counts = torch.bincount(group, minlength=n_starts).to(flat_ends.dtype)
    sums = torch.zeros(n_starts, flat_ends.shape[1], dtype=flat_ends.dtype).index_add_(0, group, flat_ends)
    best = (sums / counts[:, None])[group]
    per_pair = (flat_ends - best).square().sum(dim=1)
    _, end_group = torch.unique(torch.cat([flat_starts, flat_ends], dim=1), dim=0, return_inverse=True)
    distinct_pairs = torch.unique(end_group).numel()
    return ForcedError(per_pair.mean().item(), per_pair, best.reshape(ends.shape), group, n_starts,
                       one_to_one=distinct_pairs == n_starts)


def expected_forced_error(pairs: PairSet, strategy: PseudoHash, *, draws: int = 32,
                          generator: torch.Generator | None = None) -> float:
    """The floor (*) for what a network trained on fresh hashes can learn: ``E Var[ŷ | x̂]``.

    Origin, Cat and Res hash deterministically, so this is ``forced_error`` of
    their ``(x̂, ŷ)``. Noise draws a new ``ε`` at every step (P-I2SB Alg. 1
    line 4): one draw gives every pair its own start, but the start tells the
    partner apart only through its law ``x̂ ~ N(x_p, λ(y_p)² I)``. The best
    map then predicts ``E[ŷ | x̂]`` under the posterior over pairs
    ``∝ λ_p^{−D} exp(−‖x̂ − x_p‖²/(2λ_p²))``, and its error is averaged here
    over ``draws`` draws. With a constant ``λ`` the posterior over the partners
    of one ``x`` is uniform, so the floor is Origin's spread, exactly.
    """
    if not isinstance(strategy, Noise):
        return forced_error(*strategy.encode(pairs.x, pairs.y, generator=generator)).mse
    lam = strategy.noise_level(pairs.y).double()
    if bool((lam <= 0).any()):
        raise ValueError("expected_forced_error needs a noise level λ(y) > 0 for every pair")
    x, y = pairs.x.reshape(len(pairs), -1).double(), pairs.y.reshape(len(pairs), -1).double()
    total = 0.0
    for _ in range(draws):
        x_hat = strategy.encode(pairs.x, pairs.y, generator=generator).x_hat.reshape(len(pairs), -1).double()
        dist2 = (x_hat[:, None, :] - x[None, :, :]).square().sum(dim=-1)  # (start, pair)
        logits = -x.shape[1] * lam.log()[None, :] - dist2 / (2 * lam.square()[None, :])
        weights = torch.softmax(logits, dim=1)
        mean = weights @ y
        spread = (weights * (y[None, :, :] - mean[:, None, :]).square().sum(dim=-1)).sum(dim=1)
        total += spread.mean().item()
    return total / draws


class PairPosteriorOracle:
    """``E[X0 | X_t = x_t]`` for the bridge mixture over a finite pair set: a perfectly trained x0-net.

    Each pair contributes the Gaussian ``q(X_t | X0, X1) = N(μ_t, Σ_t I)`` (I2SB
    Prop. 3.3), so the posterior over pairs has weights ``∝ exp(−‖x_t − μ_t‖²/(2Σ_t))``
    and the minimiser of the x0-loss is ``Σ_p w_p X0_p``. Where ``Σ_t = 0`` (at
    ``t = 1``, or any ``t`` as ``β → 0``) the weight goes to the nearest ``μ_t``,
    ties shared. Call signature ``(x_t (B, D), t, cond=None)``: wrap it in
    ``X0Param`` to sample.
    """

    def __init__(self, x0: torch.Tensor, x1: torch.Tensor, schedule: Schedule) -> None:
        if x0.dim() != 2 or x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must be (P, D) of one shape; got {tuple(x0.shape)} and {tuple(x1.shape)}")
        self.x0, self.x1, self.schedule = x0, x1, schedule

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        c = posterior(self.schedule, torch.as_tensor(t, dtype=torch.float64).expand(x_t.shape[0]))
        x0, x1 = self.x0.to(x_t), self.x1.to(x_t)
        means = c.mu_x0.to(x_t)[:, None, None] * x0 + c.mu_x1.to(x_t)[:, None, None] * x1  # (B, P, D)
        dist2 = (x_t[:, None, :] - means).square().sum(dim=-1)
        # Same guard as EmpiricalPosteriorDenoiser: the nearest mean's logit is exactly 0, so Σ_t = 0 gives
        # the hard assignment instead of 0/0.
        excess = dist2 - dist2.min(dim=1, keepdim=True).values
        logits = -excess / (2.0 * c.var.to(x_t)[:, None])
        logits = torch.where(excess == 0, torch.zeros_like(logits), logits)
        return torch.softmax(logits, dim=1) @ x0


def check_symmetric(schedule: Schedule, *, points: int = 33) -> None:
    """Raise unless ``β(t) = β(1 − t)``: only then is the bridge ``a → b`` the bridge ``b → a`` run backwards.

    The forward (clean → degraded) maps here reuse the sampler with the
    endpoints swapped, which is exact for such schedules (Symmetric, Constant).
    """
    t = torch.linspace(0, 1, points, dtype=torch.float64)
    if not torch.allclose(schedule.beta(t), schedule.beta(1 - t), rtol=1e-12, atol=0):
        raise ValueError(f"the forward map needs a symmetric schedule β(t) = β(1 − t); {schedule!r} is not")


def oracle_sampler(x0: torch.Tensor, x1: torch.Tensor, schedule: Schedule, *, nfe: int = 50, ot_ode: bool = True,
                   generator: torch.Generator | None = None,
                   trajectory_stride: int = 0) -> Callable[[torch.Tensor], SampleResult]:
    """I2SB Alg. 2 from given starts at ``t = 1`` with ``PairPosteriorOracle(x0, x1)`` as the network."""
    model = X0Param(PairPosteriorOracle(x0, x1, schedule), schedule)
    return lambda starts: sample(model, starts, schedule, nfe=nfe, ot_ode=ot_ode, generator=generator,
                                 trajectory_stride=trajectory_stride)


def oracle_forward_map(x_hat: torch.Tensor, y_hat: torch.Tensor, schedule: Schedule, **kwargs) -> Map:
    """The clean → degraded flow of a perfectly trained bridge on the pairs ``(x̂, ŷ)``: starts ↦ ends.

    The sampler with the roles swapped (``ŷ`` the target, ``x̂`` the start);
    with ``ot_ode`` (the default) it is the deterministic OT-ODE map of I2SB
    Prop. 3.4, the ``β → 0`` limit when ``schedule`` is scaled down.
    ``kwargs``: ``nfe``, ``ot_ode``, ``generator`` of ``oracle_sampler``.
    """
    check_symmetric(schedule)
    run = oracle_sampler(y_hat, x_hat, schedule, **kwargs)
    return lambda starts: run(starts).x0


def oracle_restoring_map(x_hat: torch.Tensor, y_hat: torch.Tensor, schedule: Schedule, **kwargs) -> Map:
    """The degraded → clean sampler (I2SB Alg. 2) of a perfectly trained bridge on ``(x̂, ŷ)``: ``ŷ ↦ x̂``."""
    run = oracle_sampler(x_hat, y_hat, schedule, **kwargs)
    return lambda starts: run(starts).x0


@dataclasses.dataclass(frozen=True)
class MapError:
    """A map's mean squared endpoint error ``mse`` next to the floor (*) ``forced`` for the same pairs.

    ``reached``: ``(P, D)`` where the map took each row (rows with one start
    share one run of the map); ``per_pair``: ``(P,)`` squared errors.
    """

    mse: float
    forced: ForcedError
    reached: torch.Tensor
    per_pair: torch.Tensor


def _run_grouped(map_fn: Map, starts: torch.Tensor, forced: ForcedError) -> torch.Tensor:
    # One run per distinct start, shared by its rows: then mse ≥ forced.mse holds exactly, even for a
    # random map, because (*) bounds every single draw.
    order = torch.argsort(forced.group, stable=True)
    counts = torch.bincount(forced.group, minlength=forced.n_starts)
    first = order[torch.cumsum(counts, 0) - counts]  # one representative row per distinct start
    return map_fn(starts[first])[forced.group]


def forward_error(map_fn: Map, x_hat: torch.Tensor, y_hat: torch.Tensor) -> MapError:
    """How close a clean → degraded map gets from each hashed start ``x̂`` to its own ``ŷ``.

    ``x_hat``, ``y_hat``: ``(P, D')`` from ``strategy.encode(pairs.x, pairs.y)``
    (encode once and hand the same tensors to the map's builder, so a random
    strategy's ``ε`` agrees); ``map_fn``: ``(G, D') -> (G, D')``, e.g.
    ``oracle_forward_map(x_hat, y_hat, ...)``. Rows of Origin that share ``x``
    share a start, so ``mse ≥ forced.mse > 0``.
    """
    forced = forced_error(x_hat, y_hat)
    reached = _run_grouped(map_fn, x_hat, forced)
    per_pair = (reached - y_hat).reshape(x_hat.shape[0], -1).square().sum(dim=1)
    return MapError(per_pair.mean().item(), forced, reached, per_pair)


def restoring_error(map_fn: Map, pairs: PairSet, strategy: PseudoHash) -> MapError:
    """How close restoring gets: ``x = J(map_fn(ŷ), y)`` against each row's true clean ``x``.

    ``map_fn``: ``(G, D') -> (G, D')`` from restoring starts ``ŷ = strategy.endpoint(y)``
    to hashed clean points ``x̂``, e.g. a trained sampler or ``oracle_restoring_map``.
    ``forced`` is (*) from ``ŷ`` to ``x``: the same for every strategy, since
    ``ŷ`` is a one-to-one function of ``y``.
    """
    forced = forced_error(strategy.endpoint(pairs.y), pairs.x)
    reached = restore_map(lambda y_hat: _run_grouped(map_fn, y_hat, forced), pairs.y, strategy)
    per_pair = (reached - pairs.x).square().sum(dim=1)
    return MapError(per_pair.mean().item(), forced, reached, per_pair)
