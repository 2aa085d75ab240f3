"""I2SB against its diffusion baseline on MNIST under I2SB's fixed operators: Fig. 8 and Table 6 (I2SB §5.2–5.3).

Every *cell* trains one model on one operator with one seed and restores the same
held-out digits at every NFE asked for:

=============  ==============================================================  ==================
model          what                                                             sampled with
=============  ==============================================================  ==================
``i2sb``       the bridge from y to x (I2SB Alg. 1, ε-parameterization)         DDPM posterior (Alg. 2)
``i2sb-ot``    the same trained and sampled on the posterior mean (Prop. 3.4)   its mean (OT-ODE)
``palette``    Palette: N(0, I) → x with y concatenated, ε-prediction           DDPM ancestral
``palette-v``  the same with v-prediction (a better-conditioned Palette)        DDPM ancestral
=============  ==============================================================  ==================

I2SB Fig. 8's fair comparison: both trained on the same pairs with the same U-Net and
sampled with DDPM steps on the same quadratic grid, so that they differ in the boundary
distribution, ``p_B(·|X0)`` vs ``N(0, I)``. Pairs are drawn on the fly (``operator(x)``
at every step, new masks for free-form inpainting); the test digits are the first
``eval_size`` of the held-out split, degraded once from ``TEST_DEGRADATION_SEED``.
Palette's x̂0 is clipped to [−1, 1] (DDPM practice for images); the bridge's is not
(I2SB's sampler does not). Metrics: digit accuracy, FD on our classifier's features,
PSNR, SSIM (``mnist_eval.evaluate_restored``). Masked pixels of inpainting are filled as
``operators`` does (white), not with noise as I2SB App. C.1 does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from ..conditioning import get_conditioning
from ..data.mnist import load_mnist
from ..diffusion import PaletteObjective, VPSchedule, ddpm, prior_noise
from ..metrics import classifier_accuracy
from ..nets.classifier import DigitClassifier, train_digit_classifier
from ..nets.unet import CONFIGS
from ..objective import BridgeObjective
from ..operators import I2SB_OPERATORS, get_operator
from ..recipe import Recipe, make_recipe
from ..schedule import GRIDS, SymmetricSchedule
from .._checks import check_real
from ..train import training_loop
from ..train_settings import StudyTraining
from .cells import CpuClock, check_seeds, run_cells
from .mnist import CLASSIFIER_SEED, TEST_DEGRADATION_SEED, TestSet
from .mnist_eval import ImageMetrics, evaluate_restored

__all__ = ["ModelKind", "MODELS", "FIG8_OPERATORS", "TABLE6_OPERATORS", "FIG8_NFES", "BaselineConfig",
           "operator_test_set", "bridge_recipe", "TrainedModel", "train_model", "restore_with", "CellRecord",
           "run_cell", "OperatorStudy", "run_operator_study", "check_operators", "check_models"]


@dataclasses.dataclass(frozen=True)
class ModelKind:
    name: str
    label: str
    bridge: bool
    ot_ode: bool = False
    prediction: str = "eps"


MODELS: dict[str, ModelKind] = {m.name: m for m in (
    ModelKind("i2sb", "I2SB", bridge=True),
    ModelKind("i2sb-ot", "I2SB (OT-ODE)", bridge=True, ot_ode=True),
    ModelKind("palette", "Palette (ε)", bridge=False),
    ModelKind("palette-v", "Palette (v)", bridge=False, prediction="v"),
)}
FIG8_OPERATORS = ("sr4x-pool", "blur-uni", "jpeg-10", "inpaint-freeform2030")  # one of each of I2SB's tasks
TABLE6_OPERATORS = ("jpeg-5", "jpeg-10", "blur-uni", "blur-gauss")            # I2SB Table 6's columns
FIG8_NFES = (1, 2, 5, 10, 20, 100)  # NFE 1000 on request (--nfes … 1000): ~40 CPU-min more


def _check_names(names: Sequence[str], valid: Sequence[str], what: str) -> list[str]:
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise ValueError(f"unknown {what}(s) {unknown or names}; valid names: {', '.join(valid)}")
    return names


def check_operators(names: Sequence[str]) -> list[str]:
    return _check_names(names, list(I2SB_OPERATORS), "operator")


def check_models(names: Sequence[str]) -> list[str]:
    return _check_names(names, list(MODELS), "model")


@dataclasses.dataclass(frozen=True)
class BaselineConfig(StudyTraining):
    """Settings shared by every cell. Training: ``total_steps`` × ``batch_size``, AdamW at ``lr`` with
    ``lr_warmup_steps``, EMA ``ema_decay``; the bridge's symmetric schedule (``beta_min``, ``beta_max``) and the
    VP schedule (``vp_beta_min``, ``vp_beta_max``); sampling on ``grid``; Palette's ``clip_x0``.
    Data: ``train_size`` clean training digits (None: all 4,000), ``eval_size`` held-out digits."""

    net: str = "mnist-fast"
    total_steps: int = 200
    batch_size: int = 32
    lr: float = 2e-3
    lr_warmup_steps: int = 20
    ema_decay: float = 0.98
    beta_min: float = 0.1
    beta_max: float = 0.3
    vp_beta_min: float = 0.1
    vp_beta_max: float = 20.0
    grid: str = "quadratic"
    clip_x0: float = 1.0
    train_size: int | None = None
    eval_size: int = 64
    classifier_epochs: int = 5

    def __post_init__(self) -> None:
        self.train_settings()  # total_steps, batch_size, lr, lr_warmup_steps, ema_decay: checked there, once
        for name in ("eval_size", "classifier_epochs"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if self.eval_size < 2:
            raise ValueError(f"eval_size must be >= 2 (the Fréchet distance fits a covariance); got {self.eval_size}")
        if self.train_size is not None and (type(self.train_size) is not int or self.train_size < self.batch_size):
            raise ValueError(f"train_size must be None or an int >= batch_size ({self.batch_size}); "
                             f"got {self.train_size!r}")
        if self.net not in CONFIGS:
            raise ValueError(f"net must be one of {sorted(CONFIGS)}; got {self.net!r}")
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {list(GRIDS)}; got {self.grid!r}")
        check_real("clip_x0", self.clip_x0, low=0, low_open=True)


    def bridge_schedule(self) -> SymmetricSchedule:
        return SymmetricSchedule(self.beta_min, self.beta_max)

    def vp_schedule(self) -> VPSchedule:
        return VPSchedule(self.vp_beta_min, self.vp_beta_max)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def operator_test_set(operator: str, size: int, *, seed: int = TEST_DEGRADATION_SEED) -> TestSet:
    """The first ``size`` held-out digits and their degradation by ``operator`` (masks drawn from ``seed``)."""
    data = load_mnist("test")
    if not 1 <= size <= len(data):
        raise ValueError(f"eval_size must lie in [1, {len(data)}] (the test split); got {size}")
    x = data.images[:size]
    y = get_operator(operator)(x, generator=torch.Generator().manual_seed(seed)).y
    return TestSet(x, y, data.labels[:size], torch.zeros(size, 0))


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained cell model: ``model`` (the EMA network; a bridge's wrapped in ``EpsParam``), its ``kind``,
    the schedule it samples on, per-step ``losses``; a bridge's ``recipe`` (None for Palette)."""

    kind: ModelKind
    model: torch.nn.Module
    schedule: SymmetricSchedule | VPSchedule
    losses: list[float]
    recipe: Recipe | None = None


def bridge_recipe(config: BaselineConfig, bridge=None) -> Recipe:
    """The bridges of these studies (``recipe.make_recipe``): I2SB's symmetric schedule of ``config`` (or
    ``bridge``), no hashing, no condition (I2SB maps y to x directly), the U-Net ``config.net``."""
    return make_recipe(bridge="i2sb" if bridge is None else bridge, beta_min=config.beta_min,
                       beta_max=config.beta_max, net=config.net)


def train_model(kind: ModelKind, operator: str, config: BaselineConfig, *, seed: int,
                device: str | torch.device = "cpu", run_dir: str | Path | None = None,
                progress: bool = True) -> TrainedModel:
    """Train one model on ``(x, operator(x))`` pairs drawn at every step, through ``train.training_loop``.
    ``run_dir``: a finished run found there is loaded, an interrupted one resumed."""
    op = get_operator(operator)
    images = load_mnist("train").images
    images = images if config.train_size is None else images[: config.train_size]
    recipe = bridge_recipe(config)
    pair_fn = recipe.degrade_pair_fn(lambda x, g: (x, op(x, generator=g).y, None))
    if kind.bridge:
        schedule = recipe.bridge
        net = recipe.network(seed)
        objective = BridgeObjective(schedule, ot_ode=kind.ot_ode)
    else:  # Palette: the same U-Net with y concatenated (an lq-conditioned backbone), on the VP schedule
        schedule = config.vp_schedule()
        net = dataclasses.replace(recipe, conditioning=get_conditioning("lq")).backbone(seed)
        objective = PaletteObjective(schedule, prediction=kind.prediction)
    settings = config.train_settings(seed=seed, device=str(device), run_dir=run_dir, resume=run_dir is not None,
                                     log_every=max(1, config.total_steps // 10), progress=progress)
    result = training_loop(settings, model=net, objective=objective, dataset=images, pair_fn=pair_fn,
                           config={"model": kind.name, "operator": operator, "baselines": config.as_dict()})
    return TrainedModel(kind, result.ema.eval(), schedule, list(result.losses), recipe if kind.bridge else None)


@torch.no_grad()
def restore_with(trained: TrainedModel, y: torch.Tensor, *, nfe: int, grid: str = "quadratic", seed: int = 0,
                 clip_x0: float | None = 1.0) -> torch.Tensor:
    """Restore ``y`` with a trained cell model at ``nfe`` steps; the result is clamped to [−1, 1], on the CPU.
    Bridges: ``pipeline.restore`` (DDPM posterior steps, or the OT-ODE mean); Palette: DDPM from N(0, I)
    with ``y`` as the condition (``clip_x0`` on x̂0)."""
    device = next(trained.model.parameters()).device
    if trained.kind.bridge:
        return trained.recipe.restore(trained.model, y, nfe=nfe, grid=grid, ot_ode=trained.kind.ot_ode, seed=seed,
                                      clamp=(-1.0, 1.0)).x.cpu()
    gen = torch.Generator(device=device).manual_seed(seed)
    y = y.to(device)
    start = prior_noise(y.shape, generator=gen, device=device)
    out = ddpm(trained.model, start, trained.schedule, nfe=nfe, grid=grid, cond=y, generator=gen, clip_x0=clip_x0)
    return out.x0.clamp(-1, 1).cpu()


@dataclasses.dataclass(frozen=True)
class CellRecord:
    """One model × operator × seed: ``metrics[nfe]``, the first restored ``samples[nfe]``, training ``losses``,
    wall ``train_seconds`` / ``eval_seconds`` and the cell's ``cpu_seconds``."""

    model: str
    operator: str
    seed: int
    metrics: dict[int, ImageMetrics]
    samples: dict[int, torch.Tensor]
    losses: list[float]
    train_seconds: float
    eval_seconds: float
    cpu_seconds: float


def run_cell(*, model: str, operator: str, seed: int, config: BaselineConfig, nfes: Sequence[int], test: TestSet,
             classifier: DigitClassifier, device: str | torch.device = "cpu", run_dir: str | Path | None = None,
             progress: bool = True, n_samples: int = 8) -> CellRecord:
    """Train (or load) one model, restore ``test.y`` at every NFE in ``nfes`` (sampling seed = ``seed``), measure."""
    clock = CpuClock()
    trained = train_model(MODELS[model], operator, config, seed=seed, device=device, run_dir=run_dir,
                          progress=progress)
    train_seconds = clock.wall
    metrics, samples = {}, {}
    for nfe in nfes:
        x = restore_with(trained, test.y, nfe=nfe, grid=config.grid, seed=seed, clip_x0=config.clip_x0)
        metrics[nfe], samples[nfe] = evaluate_restored(x, test, classifier), x[:n_samples]
    return CellRecord(model, operator, seed, metrics, samples, trained.losses, train_seconds,
                      clock.wall - train_seconds, clock.cpu)


@dataclasses.dataclass(frozen=True)
class OperatorStudy:
    """Everything :func:`run_operator_study` measured: the cell ``records``, each operator's ``degraded`` input
    metrics and ``tests`` (held-out digits), the classifier's clean accuracy, wall and summed CPU seconds."""

    config: BaselineConfig
    operators: list[str]
    models: list[str]
    seeds: list[int]
    nfes: list[int]
    records: list[CellRecord]
    degraded: dict[str, ImageMetrics]
    tests: dict[str, TestSet]
    classifier_accuracy: float
    device: str
    seconds: float
    cpu_seconds: float

    def record(self, model: str, operator: str, seed: int) -> CellRecord:
        for r in self.records:
            if (r.model, r.operator, r.seed) == (model, operator, seed):
                return r
        raise KeyError(f"no record for model {model!r}, operator {operator!r}, seed {seed}")


def operator_cells(config, operators, models, seeds, nfes, *, run_dir, device, progress):
    """What an operator study measures with: one digit classifier (seed ``CLASSIFIER_SEED``), its clean test
    accuracy, each operator's test set and degraded-input metrics, and one cell (keyword dict) per
    seed × operator × model (``run_dir/seed{s}/{op}/{model}`` when ``run_dir`` is given)."""
    run_dir = None if run_dir is None else Path(run_dir)
    train = load_mnist("train")
    classifier = train_digit_classifier(train.images, train.labels, epochs=config.classifier_epochs,
                                        seed=CLASSIFIER_SEED, device=device, progress=progress).cpu()
    full_test = load_mnist("test")
    clean_accuracy = classifier_accuracy(classifier, full_test.images, full_test.labels)
    tests = {op: operator_test_set(op, config.eval_size) for op in operators}
    degraded = {op: evaluate_restored(tests[op].y, tests[op], classifier) for op in operators}
    cells = [dict(model=m, operator=op, seed=s, config=config, nfes=nfes, test=tests[op], classifier=classifier,
                  device=device, progress=progress,
                  run_dir=None if run_dir is None else run_dir / f"seed{s}" / op / m)
             for s in seeds for op in operators for m in models]
    return classifier, clean_accuracy, tests, degraded, cells


def run_operator_study(config: BaselineConfig = BaselineConfig(), *, operators: Sequence[str] = FIG8_OPERATORS,
                       models: Sequence[str] = ("i2sb", "palette", "palette-v"), seeds: Sequence[int] = (0, 1, 2),
                       nfes: Sequence[int] = FIG8_NFES, device: str | torch.device = "cpu",
                       run_dir: str | Path | None = None, workers: int = 1, progress: bool = True) -> OperatorStudy:
    """Every model × operator × seed cell (the entry point of ``toy/palette_nfe.py`` and ``toy/ot_ode.py``).

    One digit classifier (seed ``CLASSIFIER_SEED``) measures everything. ``run_dir``: checkpoints per
    seed/operator/model (a rerun into the same folder reloads them). Everything is checked first.
    """
    operators, models, seeds = check_operators(operators), check_models(models), check_seeds(seeds)
    nfes = sorted(set(nfes))
    if not nfes or any(type(n) is not int or n < 1 for n in nfes):
        raise ValueError(f"nfes must be a non-empty list of ints >= 1; got {nfes}")
    clock, device = CpuClock(), torch.device(device)
    setup = operator_cells(config, operators, models, seeds, nfes, run_dir=run_dir, device=device, progress=progress)
    classifier, clean_accuracy, tests, degraded, cells = setup
    records = run_cells(run_cell, cells, workers=workers, device=device, progress=progress, desc="cells",
                        label=lambda c: f"{c['model']} · {c['operator']} · seed {c['seed']}")
    cpu = clock.cpu + sum(r.cpu_seconds for r in records) * (workers > 1 and device.type == "cpu")
    return OperatorStudy(config, operators, models, seeds, nfes, records, degraded, tests, clean_accuracy,
                         str(device), clock.wall, cpu)
