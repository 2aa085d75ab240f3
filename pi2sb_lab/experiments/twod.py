"""Training and evaluating bridges on 2D points: the one code path of notebooks 02–04 and ``toy/twod.py``.

``fit_bridge`` is P-I2SB Alg. 1 around the 2D MLP, through ``train.training_loop``
(pairs from ``pipeline``'s pair functions); ``sample_bridge`` runs the sampler
(Alg. 2) from given starts. ``train_and_restore`` trains on the blind 2D problem
(``data.toy2d``) for one strategy, restores its test set with
``pipeline.restore`` and measures the restored points: distance to the true
clean partner, cluster-assignment accuracy and the sliced W₂ distance to the
clean distribution. ``learned_map`` turns a bridge trained on a pair set into
the map ``counterexample.forward_error`` / ``restoring_error`` measure.

The hyper-parameters live in one ``BridgeConfig`` shared by every strategy.
``parameterization="eps"`` as in P-I2SB Alg. 1 line 6: ``X0 = X_t − σ_t ε``
builds the near-identity of small ``t`` into the model. A plain x0-network
has to learn that identity itself, and at these budgets it does not: its
sampler collapses every cluster onto its center (within-cluster spread 0.01
against the data's 0.15; an exact posterior-mean oracle keeps 0.13).

Tiny MLPs train far faster on one thread: several threads fighting over a few
shared cores made a 2D step 40× slower, hence ``single_thread()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator

import torch

from torch.utils.data import Dataset, TensorDataset

from .._checks import check_int, check_real
from ..conditioning import Conditioning
from ..counterexample import PairSet, check_symmetric
from ..data.toy2d import BlindDegradation2D, cluster_accuracy, cluster_centers, clusters, sliced_wasserstein2
from ..hashing import EmpiricalPosteriorDenoiser, Origin, PseudoHash
from ..parameterization import PARAMETERIZATIONS, Parameterization
from ..pipeline import pool_pair_fn
from ..recipe import MLP, Recipe, make_recipe
from ..sampler import SampleResult, sample
from ..schedule import GRIDS, SCHEDULES, Schedule, make_schedule
from ..train import PairFn, training_loop
from ..train_settings import StudyTraining

__all__ = [
    "single_thread",
    "BridgeConfig",
    "bridge_recipe",
    "FittedBridge",
    "resampled",
    "pair_indices",
    "fixed_pairs",
    "fit_bridge",
    "sample_bridge",
    "learned_map",
    "DEGRADATIONS",
    "Blind2DProblem",
    "make_problem",
    "Metrics2D",
    "evaluate",
    "Restoration2D",
    "train_and_restore",
]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclasses.dataclass(frozen=True)
class BridgeConfig(StudyTraining):
    """Everything that sets how a 2D bridge is trained and sampled; the same for every strategy.

    ``total_steps``, ``batch_size``, ``lr``: Adam with (``lr_decay``, ``lr_final``) a cosine decay to
    ``lr/10`` — the training loop's settings of those names, checked there; ``ema_decay``:
    the EMA the sampler uses (0: the last weights — the cosine decay already settles them);
    ``hidden``, ``depth``, ``time_dim``: the ``MLP2D``; ``parameterization``:
    "x0", "eps" or "karras"; ``schedule``: "symmetric" (β_min 0.1, β_max 0.3) or
    "constant" (β 0.1), multiplied by ``beta_scale`` (``Schedule.scaled``);
    ``nfe``, ``grid``: the sampler; ``noise_level``: Noise-I2SB's ``λ``;
    ``condition_on_y``: also feed the raw degraded point ``y`` to the network
    (concatenated, as I2SB's optional ``cond``), off in the ablation.
    """

    total_steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
    lr_decay: str = "cosine"
    lr_final: float = 0.1
    hidden: int = 64
    depth: int = 2
    time_dim: int = 32
    parameterization: str = "eps"
    schedule: str = "symmetric"
    beta_scale: float = 1.0
    nfe: int = 20
    grid: str = "quadratic"
    noise_level: float = 0.05
    condition_on_y: bool = False
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        self.train_settings()  # total_steps, batch_size, lr, lr_decay, lr_final, ema_decay: checked there, once
        for name in ("hidden", "nfe", "time_dim"):
            check_int(name, getattr(self, name), low=1)
        check_int("depth", self.depth, low=0)
        check_real("beta_scale", self.beta_scale, low=0, low_open=True)
        check_real("noise_level", self.noise_level, low=0)
        for name, valid in (("parameterization", PARAMETERIZATIONS), ("schedule", SCHEDULES), ("grid", GRIDS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {sorted(valid)}; got {getattr(self, name)!r}")

    def make_schedule(self) -> Schedule:
        return make_schedule(self.schedule).scaled(self.beta_scale)


def bridge_recipe(config: BridgeConfig, strategy: str | PseudoHash = "origin",
                  conditioning: Conditioning = Conditioning(), *, dim: int = 2, denoiser=None, **net) -> Recipe:
    """The 2D bridge of ``config`` (``recipe.make_recipe``): its schedule and parameterization, the
    ``strategy`` (Noise with level ``config.noise_level`` and ``denoiser``) and ``conditioning``, an MLP of
    ``config``'s size for points of ``dim`` coordinates (``net``: other ``MLP2D`` keywords, e.g. ``cond_dim``)."""
    return make_recipe(bridge=config.make_schedule(), strategy=strategy, conditioning=conditioning, net=MLP,
                       channels=dim, parameterization=config.parameterization, noise_level=config.noise_level,
                       denoiser=denoiser, hidden=config.hidden, depth=config.depth, time_dim=config.time_dim, **net)


@dataclasses.dataclass(frozen=True)
class FittedBridge:
    """A trained 2D bridge: ``model`` (a parameterization around the MLP) for ``schedule``.

    ``ot_ode``: trained on the posterior mean (I2SB Prop. 3.4) and so sampled
    without noise by default; ``losses``: ``(steps,)``; ``seconds``: wall time.
    """

    model: Parameterization
    schedule: Schedule
    ot_ode: bool
    config: BridgeConfig
    losses: torch.Tensor
    seconds: float


def resampled(data: torch.Tensor, *, at_least: int = 4096) -> TensorDataset:
    """``data`` ``(n, ...)`` repeated to at least ``at_least`` rows: a set of a few points still fills
    every batch, and shuffled epochs over the copies draw the rows about as with replacement."""
    return TensorDataset(data.repeat(-(-at_least // data.shape[0]), *([1] * (data.dim() - 1))))


def pair_indices(n: int, *, at_least: int = 4096) -> TensorDataset:
    """Row indices ``0 … n−1`` for a pool pair function, :func:`resampled`."""
    return resampled(torch.arange(n), at_least=at_least)


def fixed_pairs(x0: torch.Tensor, x1: torch.Tensor) -> tuple[Dataset, PairFn]:
    """``(dataset, pair_fn)`` for :func:`fit_bridge` from a fixed pair set ``x0``, ``x1`` ``(P, D)`` (no hashing)."""
    if x0.dim() != 2 or x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must be (P, D) pair sets of one shape; got {tuple(x0.shape)} and "
                         f"{tuple(x1.shape)}")
    return pair_indices(x0.shape[0]), pool_pair_fn(x0.float(), x1.float(), Origin())


def fit_bridge(dataset: Dataset | torch.Tensor, pair_fn: PairFn, bridge: int | Recipe,
               config: BridgeConfig = BridgeConfig(), *, ot_ode: bool = False, cond_dim: int = 0,
               seed: int = 0) -> FittedBridge:
    """Train a 2D bridge with ``train.training_loop`` (P-I2SB Alg. 1): the MLP, Adam, cosine decay, EMA.

    ``dataset``/``pair_fn``: what the loop draws from, ``pair_fn(batch, generator) ->
    (x0, x1, cond)`` (see ``Recipe.degrade_pair_fn`` / ``pool_pair_fn``, or :func:`fixed_pairs`).
    ``bridge``: the :func:`bridge_recipe` whose network is trained, or for a raw pair set
    the point dimension ``dim`` of the endpoints ``(B, dim)`` with ``cond`` ``(B, cond_dim)``
    or None. ``ot_ode``: train on ``X_t = μ_t`` (no noise). ``seed`` fixes the initialisation
    and every draw. Float32 on the CPU, one thread.
    """
    recipe = bridge if isinstance(bridge, Recipe) else bridge_recipe(config, dim=bridge, cond_dim=cond_dim)
    schedule = recipe.bridge
    with single_thread():
        model = recipe.network(seed)
        start = time.perf_counter()
        settings = config.train_settings(ot_ode=ot_ode, seed=seed, device="cpu", log_every=config.total_steps,
                                         progress=False)
        result = training_loop(settings, model=model, schedule=schedule, dataset=dataset, pair_fn=pair_fn)
    return FittedBridge(result.ema.eval(), schedule, ot_ode, config, torch.tensor(result.losses),
                        time.perf_counter() - start)


def sample_bridge(fitted: FittedBridge, starts: torch.Tensor, *, cond: torch.Tensor | None = None,
                  ot_ode: bool | None = None, seed: int = 0, trajectory_stride: int = 0) -> SampleResult:
    """Run the sampler (I2SB Alg. 2) from ``starts`` ``(N, dim)`` at ``t = 1``; ``ot_ode`` defaults to how it
    was trained. (No hashing: for the whole restore pipeline see ``pipeline.restore``.)"""
    ot_ode = fitted.ot_ode if ot_ode is None else ot_ode
    cond = None if cond is None else cond.float()
    with single_thread():
        return sample(fitted.model, starts.float(), fitted.schedule, nfe=fitted.config.nfe, grid=fitted.config.grid,
                      ot_ode=ot_ode, cond=cond, generator=torch.Generator().manual_seed(seed),
                      trajectory_stride=trajectory_stride)


def learned_map(pairs: PairSet, strategy: PseudoHash, direction: str, *, config: BridgeConfig | None = None,
                seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Train an MLP bridge on the hashed pairs and return its deterministic OT-ODE sampler as a map.

    Pairs are drawn from the set and hashed afresh at every step (P-I2SB Alg. 1
    line 4), trained and sampled with the OT-ODE (I2SB Prop. 3.4). ``direction``:
    "forward" (``x̂ ↦ ŷ``, the roles swapped, so the schedule must be symmetric) or
    "restore" (``ŷ ↦ x̂``, the sampler of Alg. 2). The result takes and returns
    float64 like the pair sets of ``counterexample.py``.
    """
    if direction not in ("forward", "restore"):
        raise ValueError(f"direction must be one of ['forward', 'restore']; got {direction!r}")
    config = config or BridgeConfig(total_steps=400, batch_size=64, lr=3e-3)
    recipe = bridge_recipe(config, strategy, dim=pairs.x.shape[1])
    check_symmetric(recipe.bridge)
    hashed = recipe.pool_pair_fn(pairs.x.float(), pairs.y.float())

    def pair_fn(rows: torch.Tensor, generator: torch.Generator):
        x_hat, y_hat, _ = hashed(rows, generator)
        return (y_hat, x_hat, None) if direction == "forward" else (x_hat, y_hat, None)

    fitted = fit_bridge(pair_indices(len(pairs)), pair_fn, recipe, config, ot_ode=True, seed=seed)
    return lambda starts: sample_bridge(fitted, starts).x0.to(starts.dtype)


# --- the blind 2D problem -------------------------------------------------------------

# "default": data.toy2d's own (partners spread ~1 unit, the cluster still readable from y);
# "hard": twice the rotation, shift and noise, so y often sits nearer a neighbouring cluster.
DEGRADATIONS: dict[str, BlindDegradation2D] = {
    "default": BlindDegradation2D(),
    "hard": BlindDegradation2D(angle_range=(-0.8, 0.8), scale_range=(0.6, 1.4), shift_range=(-0.5, 0.5),
                               noise_range=(0.0, 0.1)),
}


@dataclasses.dataclass(frozen=True)
class Blind2DProblem:
    """A fixed clean training set and a held-out test set with one blind degradation each.

    ``train_x`` ``(n_train, 2)``: the clean points training draws from (each is
    degraded afresh every time it is drawn, so it meets many partners);
    ``test_x``, ``test_labels``, ``test_y``: clean test points, their clusters,
    their degraded partners; ``centers``: the cluster centers.
    """

    train_x: torch.Tensor
    test_x: torch.Tensor
    test_labels: torch.Tensor
    test_y: torch.Tensor
    centers: torch.Tensor
    degradation: BlindDegradation2D


def make_problem(seed: int = 0, *, n_train: int = 1000, n_test: int = 1000,
                 degradation: BlindDegradation2D | str = "default") -> Blind2DProblem:
    """Four clusters (``data.toy2d.clusters``) under a blind degradation (or a ``DEGRADATIONS`` name), from ``seed``."""
    if n_train < 1 or n_test < 2:
        raise ValueError(f"need n_train >= 1 and n_test >= 2; got n_train={n_train}, n_test={n_test}")
    if isinstance(degradation, str):
        if degradation not in DEGRADATIONS:
            raise ValueError(f"degradation must be one of {list(DEGRADATIONS)}; got {degradation!r}")
        degradation = DEGRADATIONS[degradation]
    gen = torch.Generator().manual_seed(seed)
    train = clusters(n_train, generator=gen)
    test = clusters(n_test, generator=gen)
    test_y = degradation(test.points, generator=gen).y
    return Blind2DProblem(train.points, test.points, test.labels, test_y, cluster_centers(), degradation)


@dataclasses.dataclass(frozen=True)
class Metrics2D:
    """``dist``: mean ‖restored − true clean partner‖; ``accuracy``: nearest-center cluster hits;
    ``sw2``: √(sliced W₂²) between the restored cloud and the clean test cloud."""

    dist: float
    accuracy: float
    sw2: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def evaluate(restored: torch.Tensor, problem: Blind2DProblem, *, seed: int = 0) -> Metrics2D:
    """Metrics of ``restored`` ``(n_test, 2)`` against the test set (``y`` itself gives the no-restoration row)."""
    if restored.shape != problem.test_x.shape:
        raise ValueError(f"restored must have the test set's shape {tuple(problem.test_x.shape)}; got "
                         f"{tuple(restored.shape)}")
    restored = restored.detach().double()
    truth = problem.test_x.double()
    sw2 = sliced_wasserstein2(restored, truth, generator=torch.Generator().manual_seed(seed)).sqrt().item()
    return Metrics2D(dist=(restored - truth).norm(dim=1).mean().item(),
                     accuracy=cluster_accuracy(restored, problem.test_labels, problem.centers.double()), sw2=sw2)


@dataclasses.dataclass(frozen=True)
class Restoration2D:
    """One strategy trained and evaluated: ``restored`` ``(n_test, 2)``, its ``metrics``, the fit."""

    strategy: str
    ot_ode: bool
    seed: int
    restored: torch.Tensor
    metrics: Metrics2D
    fitted: FittedBridge
    sampled: SampleResult


def train_and_restore(problem: Blind2DProblem, strategy: str, *, ot_ode: bool = False, seed: int = 0,
                      config: BridgeConfig = BridgeConfig(), trajectory_stride: int = 0) -> Restoration2D:
    """Train the ``strategy`` bridge on the blind problem and restore its test set (P-I2SB Alg. 1 and 2).

    Training draws clean points from ``problem.train_x`` and degrades them afresh
    each step (``pipeline.degrade_pair_fn``), from the step's generator, which
    depends on ``seed`` and the step only, so every strategy of one seed sees the
    same pairs; ``ot_ode`` applies to training and sampling.
    """
    # Noise decodes with the exact posterior-mean denoiser of the training set
    recipe = bridge_recipe(config, strategy, Conditioning(lq=config.condition_on_y),
                           denoiser=EmpiricalPosteriorDenoiser(problem.train_x))

    def degrade_fn(x: torch.Tensor, generator: torch.Generator):
        return x, problem.degradation(x, generator=generator).y, None

    data = resampled(problem.train_x, at_least=max(4096, 2 * config.batch_size))
    fitted = fit_bridge(data, recipe.degrade_pair_fn(degrade_fn), recipe, config, ot_ode=ot_ode, seed=seed)
    with single_thread():
        out = recipe.restore(fitted.model, problem.test_y.float(), nfe=config.nfe, grid=config.grid, ot_ode=ot_ode,
                             seed=seed, trajectory_stride=trajectory_stride)
    return Restoration2D(recipe.strategy.name, ot_ode, seed, out.x, evaluate(out.x, problem, seed=seed), fitted,
                         out.sampled)
