"""Training and evaluating bridges on 2D points: the one code path of notebooks 02–04 and ``toy/twod.py``.

``fit_bridge`` is P-I2SB Alg. 1 in its plainest form (draw pairs, hash, draw
``t`` and ``X_t``, regress with ``objective.bridge_loss``) around the 2D MLP;
``sample_bridge`` is Alg. 2 (``sampler.sample``). ``train_and_restore`` runs
both on the blind 2D problem (``data.toy2d``) for one strategy and measures the
restored points: distance to the true clean partner, cluster-assignment
accuracy and the sliced W₂ distance to the clean distribution.

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

from .data.toy2d import BlindDegradation2D, cluster_accuracy, cluster_centers, clusters, sliced_wasserstein2
from .hashing import EmpiricalPosteriorDenoiser, PseudoHash, get_strategy
from .nets.mlp import MLP2D
from .objective import bridge_loss
from .parameterization import PARAMETERIZATIONS, Parameterization, parameterize
from .sampler import SampleResult, sample
from .schedule import GRIDS, SCHEDULES, Schedule, make_schedule

__all__ = [
    "single_thread",
    "BridgeConfig",
    "FittedBridge",
    "fit_bridge",
    "sample_bridge",
    "DEGRADATIONS",
    "Blind2DProblem",
    "make_problem",
    "make_strategy",
    "Metrics2D",
    "evaluate",
    "Restoration2D",
    "train_and_restore",
]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
Endpoints = tuple[torch.Tensor, torch.Tensor] | Callable[[int, torch.Generator], Batch]


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
class BridgeConfig:
    """Everything that sets how a 2D bridge is trained and sampled; the same for every strategy.

    ``steps``, ``batch_size``, ``lr``: Adam with a cosine decay to ``lr/10``;
    ``hidden``, ``depth``, ``time_dim``: the ``MLP2D``; ``parameterization``:
    "x0", "eps" or "karras"; ``schedule``: "symmetric" (β_min 0.1, β_max 0.3) or
    "constant" (β 0.1), multiplied by ``beta_scale`` (``Schedule.scaled``);
    ``nfe``, ``grid``: the sampler; ``noise_level``: Noise-I2SB's ``λ``;
    ``condition_on_y``: also feed the raw degraded point ``y`` to the network
    (concatenated, as I2SB's optional ``cond``), off in the ablation.
    """

    steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
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

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "hidden", "nfe", "time_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.depth < 0 or not self.lr > 0 or not self.beta_scale > 0 or self.noise_level < 0:
            raise ValueError(f"need depth >= 0, lr > 0, beta_scale > 0, noise_level >= 0; got depth={self.depth}, "
                             f"lr={self.lr}, beta_scale={self.beta_scale}, noise_level={self.noise_level}")
        for name, valid in (("parameterization", PARAMETERIZATIONS), ("schedule", SCHEDULES), ("grid", GRIDS)):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {sorted(valid)}; got {getattr(self, name)!r}")

    def make_schedule(self) -> Schedule:
        return make_schedule(self.schedule).scaled(self.beta_scale)


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


def _batches(endpoints: Endpoints) -> Callable[[int, torch.Generator], Batch]:
    if callable(endpoints):
        return endpoints
    x0, x1 = endpoints
    if x0.dim() != 2 or x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must be (P, D) pair sets of one shape; got {tuple(x0.shape)} and "
                         f"{tuple(x1.shape)}")

    def draw(batch: int, generator: torch.Generator):
        idx = torch.randint(x0.shape[0], (batch,), generator=generator)
        return x0[idx], x1[idx], None

    return draw


def fit_bridge(endpoints: Endpoints, dim: int, config: BridgeConfig = BridgeConfig(), *, ot_ode: bool = False,
               cond_dim: int = 0, seed: int = 0,
               progress: Callable[[int, float], None] | None = None) -> FittedBridge:
    """Train a bridge between clean ``x0`` and degraded ``x1`` endpoints of dimension ``dim`` (P-I2SB Alg. 1).

    ``endpoints``: a fixed pair set ``(x0, x1)``, both ``(P, dim)``, sampled with
    replacement; or ``draw(batch, generator) -> (x0, x1, cond)`` that makes
    fresh (already hashed) pairs each step, ``cond`` ``(batch, cond_dim)`` or
    None when ``cond_dim = 0``. ``ot_ode``: train on ``X_t = μ_t`` (no noise).
    ``seed`` fixes the initialisation and every draw. ``progress(step, loss)``
    is called after each step. Float32 on the CPU, one thread.
    """
    draw = _batches(endpoints)
    schedule = config.make_schedule()
    with torch.random.fork_rng(devices=[]), single_thread():
        torch.manual_seed(seed)
        net = MLP2D(dim, hidden=config.hidden, depth=config.depth, time_dim=config.time_dim, cond_dim=cond_dim)
        model = parameterize(config.parameterization, net, schedule)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, foreach=True)
        lr_at = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps, eta_min=config.lr / 10)
        gen = torch.Generator().manual_seed(seed)
        losses = torch.empty(config.steps)
        start = time.perf_counter()
        for step in range(config.steps):
            x0, x1, cond = draw(config.batch_size, gen)
            if x0.shape != (config.batch_size, dim) or x1.shape != x0.shape:
                raise ValueError(f"endpoints must give x0 and x1 of shape ({config.batch_size}, {dim}); got "
                                 f"{tuple(x0.shape)} and {tuple(x1.shape)}")
            cond = None if cond is None else cond.float()
            loss = bridge_loss(model, x0.float(), x1.float(), schedule, cond=cond, ot_ode=ot_ode, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_at.step()
            losses[step] = loss.detach()
            if progress is not None:
                progress(step, losses[step].item())
        model.eval()
    return FittedBridge(model, schedule, ot_ode, config, losses, time.perf_counter() - start)


def sample_bridge(fitted: FittedBridge, starts: torch.Tensor, *, cond: torch.Tensor | None = None,
                  ot_ode: bool | None = None, seed: int = 0, trajectory_stride: int = 0) -> SampleResult:
    """Run I2SB Alg. 2 from ``starts`` ``(N, dim)`` at ``t = 1``; ``ot_ode`` defaults to how it was trained."""
    ot_ode = fitted.ot_ode if ot_ode is None else ot_ode
    cond = None if cond is None else cond.float()
    with single_thread():
        return sample(fitted.model, starts.float(), fitted.schedule, nfe=fitted.config.nfe, grid=fitted.config.grid,
                      ot_ode=ot_ode, cond=cond, generator=torch.Generator().manual_seed(seed),
                      trajectory_stride=trajectory_stride)


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


def make_strategy(name: str, problem: Blind2DProblem, config: BridgeConfig = BridgeConfig()) -> PseudoHash:
    """The strategy called ``name``; Noise gets level ``config.noise_level`` and the exact denoiser of the train set."""
    strategy = get_strategy(name)  # raises ValueError listing the valid names
    if strategy.name == "noise":
        return get_strategy(name, level=config.noise_level, denoiser=EmpiricalPosteriorDenoiser(problem.train_x))
    return strategy


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
                      config: BridgeConfig = BridgeConfig(), trajectory_stride: int = 0,
                      progress: Callable[[int, float], None] | None = None) -> Restoration2D:
    """Train the ``strategy`` bridge on the blind problem and restore its test set (P-I2SB Alg. 1 and 2).

    Training draws clean points from ``problem.train_x`` and degrades them afresh
    each step, from a generator that depends on ``seed`` only, so every strategy
    of one seed sees the same pairs; ``ot_ode`` applies to training and sampling.
    """
    hashing = make_strategy(strategy, problem, config)
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    hash_gen = torch.Generator().manual_seed(20_000 + seed)

    def draw(batch: int, generator: torch.Generator):
        x = problem.train_x[torch.randint(problem.train_x.shape[0], (batch,), generator=data_gen)]
        y = problem.degradation(x, generator=data_gen).y
        x_hat, y_hat = hashing.encode(x, y, generator=hash_gen)
        return x_hat, y_hat, (y if config.condition_on_y else None)

    fitted = fit_bridge(draw, hashing.channels(2), config, ot_ode=ot_ode, cond_dim=2 * config.condition_on_y,
                        seed=seed, progress=progress)
    sampled = sample_bridge(fitted, hashing.endpoint(problem.test_y),
                            cond=problem.test_y if config.condition_on_y else None, seed=seed,
                            trajectory_stride=trajectory_stride)
    restored = hashing.decode(sampled.x0, problem.test_y)
    return Restoration2D(hashing.name, ot_ode, seed, restored, evaluate(restored, problem, seed=seed), fitted, sampled)
