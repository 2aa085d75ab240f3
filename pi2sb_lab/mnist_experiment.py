"""The MNIST toy of P-I2SB (§4.3, Fig. 3b) and its Table 3 ablation, for ``toy/mnist.py`` and notebook 05 alike.

Clean digits ``x`` (``data.mnist``) are degraded blindly by P-I2SB eq. 19 with
the ``"mnist32"`` preset (``degrade.py``): every digit meets several partners
``y``, the situation of P-I2SB Cor. 4.2. Each *variant* is a bridge trained on
those pairs with one pseudo-hashing strategy (``hashing.py``, eq. 11/18) and
one condition of Table 3 (``conditioning.py``):

====================  ==========  =====  =====
variant               hashing     lq     da
====================  ==========  =====  =====
``a-vanilla``         origin      –      –       Table 3 (a), Fig. 3b "Vanilla-I2SB"
``b-lq``              origin      ✓      –       Table 3 (b)
``c-lq-da``           origin      ✓      ✓       Table 3 (c)
``d-noise``           noise       ✓      ✓       Table 3 (d)
``e-cat``             cat         ✓      ✓       Table 3 (e)
``f-res``             res         ✓      ✓       Table 3 (f)
``noise``/``cat``/``res``  …      –      –       Fig. 3b's hashing strategies alone
====================  ==========  =====  =====

Training (P-I2SB Alg. 1, through ``train.training_loop``): a pool of degraded
pairs is drawn once per seed (``partners`` degradations of every training
digit, shared by all variants so they see the same pairs); each step's
``pair_fn`` hashes a batch of them and builds the condition from the *true*
degradation vector. Restoration (Alg. 2, :func:`restore`): ``y`` → hashing
endpoint ``ŷ`` → ``sampler.sample`` → ``x̂`` → ``decode`` → ``x``, with the
``da`` condition now *estimated* from ``y`` by the degradation estimator.

Evaluation (:func:`evaluate_restored`) on a fixed set of held-out digits whose
degradations are drawn from a fixed seed (:data:`TEST_DEGRADATION_SEED`), the
same for every variant and every seed: label accuracy of a digit classifier
(§4.3's measure), PSNR, SSIM, and the Fréchet distance on our digit-classifier
features (not FID). Along the way the sampler's callback records P-I2SB
App. F Fig. 6: the per-step prediction error ``‖ε_θ(X_n, t_n) − (X_n − X̂0)/σ_{t_n}‖``
with ``X̂0`` the true hashed clean endpoint, as an RMS over the endpoint's
elements. For an ε-network ``ε_θ = (X_n − pred_x0)/σ_{t_n}``, so this is
``RMS(X̂0 − pred_x0)/σ_{t_n}``. For Noise-I2SB ``X̂0 = x + λε`` holds one draw of
the hash noise, which the network can only read off ``X_n`` itself; for Cat the
RMS runs over both channels, the second being the copy of ``y``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .conditioning import Conditioning, DegradationEstimator, EstimatorError, estimator_error, \
    train_degradation_estimator
from .data.mnist import load_mnist
from .degrade import degrade
from .denoise import ImageDenoiser, train_denoiser
from .hashing import PseudoHash, get_strategy
from .metrics import DigitClassifier, classifier_accuracy, classifier_frechet_distance, psnr, ssim, \
    train_digit_classifier
from .nets.unet import CONFIGS, UNet
from .parameterization import EpsParam, Parameterization
from .sampler import SampleResult, sample
from .schedule import GRIDS, SymmetricSchedule
from .train import training_loop

__all__ = [
    "Variant", "VARIANTS", "TABLE3", "FIG3B", "check_variants", "MNISTConfig", "TEST_DEGRADATION_SEED",
    "CLASSIFIER_SEED", "TestSet", "make_test_set", "PairPool", "make_pair_pool", "SeedComponents", "prepare_seed",
    "make_strategy", "make_network", "make_pair_fn", "TrainedVariant", "train_variant", "Restoration", "restore",
    "METRICS", "ImageMetrics", "evaluate_restored", "VariantRecord", "SeedRecord", "Ablation", "train_and_evaluate",
    "run_ablation",
]

TEST_DEGRADATION_SEED = 2025  # the held-out degradations: one fixed draw for every variant and every seed
CLASSIFIER_SEED = 0           # the digit classifier is the measuring instrument: one, whatever the run's seeds


# --------------------------------------------------------------------------- variants


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the ablation: a pseudo-hashing ``strategy`` name and a :class:`Conditioning`."""

    name: str
    strategy: str
    conditioning: Conditioning
    label: str  # the paper's name for it

    @property
    def lq(self) -> bool:
        return self.conditioning.lq

    @property
    def da(self) -> bool:
        return self.conditioning.da


_LQ, _LQ_DA, _NONE = Conditioning(lq=True), Conditioning(lq=True, da=True), Conditioning()
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("a-vanilla", "origin", _NONE, "(a) Vanilla-I2SB"),
    Variant("b-lq", "origin", _LQ, "(b) + lq"),
    Variant("c-lq-da", "origin", _LQ_DA, "(c) + lq + da"),
    Variant("d-noise", "noise", _LQ_DA, "(d) + lq + da, Noise"),
    Variant("e-cat", "cat", _LQ_DA, "(e) + lq + da, Cat"),
    Variant("f-res", "res", _LQ_DA, "(f) + lq + da, Res"),
    Variant("noise", "noise", _NONE, "Noise-I2SB"),
    Variant("cat", "cat", _NONE, "Cat-I2SB"),
    Variant("res", "res", _NONE, "Res-I2SB"),
)}
TABLE3 = ("a-vanilla", "b-lq", "c-lq-da", "d-noise", "e-cat", "f-res")  # P-I2SB Table 3 (a)–(f)
FIG3B = ("a-vanilla", "res", "cat", "noise")                             # P-I2SB Fig. 3b, no conditions


def check_variants(names: Sequence[str]) -> list[str]:
    """``names`` without duplicates, in the given order; ``ValueError`` listing the valid names otherwise."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown or names}; valid names: {', '.join(VARIANTS)}")
    return names


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class MNISTConfig:
    """Every setting of the experiment, the same for all variants. Defaults: ``make demo``'s.

    Bridge: ``net`` (a ``UNet`` config name), ``steps`` × ``batch_size`` with AdamW
    at ``lr`` (linear warm-up over ``warmup_steps``), EMA ``ema_decay``; the
    symmetric schedule (``beta_min``, ``beta_max``); sampling with ``nfe`` steps on
    ``grid``. Data: ``train_size`` training digits (None: all 4,000), each degraded
    ``partners`` times into the pair pool; ``eval_size`` held-out digits.
    Noise-I2SB: level ``noise_level`` (``λ``, images in [-1, 1]). Helpers:
    ``classifier_epochs``, ``estimator_steps``, ``denoiser_steps``.
    """

    net: str = "mnist-fast"
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 20
    ema_decay: float = 0.98
    beta_min: float = 0.1
    beta_max: float = 0.3
    nfe: int = 10
    grid: str = "quadratic"
    train_size: int | None = None
    partners: int = 2
    eval_size: int = 256
    noise_level: float = 0.05
    classifier_epochs: int = 5
    estimator_steps: int = 400
    denoiser_steps: int = 300

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "nfe", "partners", "eval_size", "classifier_epochs", "estimator_steps",
                     "denoiser_steps"):
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
        if not (self.lr > 0 and 0 <= self.ema_decay < 1 and self.noise_level > 0 and self.warmup_steps >= 0):
            raise ValueError(f"need lr > 0, 0 <= ema_decay < 1, noise_level > 0, warmup_steps >= 0; got lr={self.lr}, "
                             f"ema_decay={self.ema_decay}, noise_level={self.noise_level}, "
                             f"warmup_steps={self.warmup_steps}")

    def schedule(self) -> SymmetricSchedule:
        return SymmetricSchedule(self.beta_min, self.beta_max)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class TestSet:
    """Held-out digits and their one fixed degradation: ``x``, ``y`` ``(N, 1, 32, 32)``, ``labels`` ``(N,)``,
    ``params`` ``(N, 9)`` the true degradation vectors."""

    x: torch.Tensor
    y: torch.Tensor
    labels: torch.Tensor
    params: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]


def make_test_set(size: int, *, seed: int = TEST_DEGRADATION_SEED, config="mnist32") -> TestSet:
    """The first ``size`` test digits (a mixed, stratified prefix), degraded once from ``seed``."""
    data = load_mnist("test")
    if not 1 <= size <= len(data):
        raise ValueError(f"size must lie in [1, {len(data)}] (the test split); got {size}")
    x, y, params = degrade(data.images[:size], config, generator=torch.Generator().manual_seed(seed))
    return TestSet(x, y, data.labels[:size], params.as_vector())


@dataclasses.dataclass(frozen=True)
class PairPool:
    """Degraded training pairs: ``x``, ``y`` ``(P, 1, 32, 32)`` and ``params`` ``(P, 9)``, ``partners`` per digit."""

    x: torch.Tensor
    y: torch.Tensor
    params: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device) -> "PairPool":
        return PairPool(self.x.to(device), self.y.to(device), self.params.to(device))


def make_pair_pool(images: torch.Tensor, partners: int, *, seed: int, config="mnist32") -> PairPool:
    """Every image degraded ``partners`` times (independent draws from ``seed``): the one-to-many pairs of Cor. 4.2."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    draws = [degrade(images, config, generator=gen) for _ in range(partners)]
    return PairPool(torch.cat([d.x for d in draws]), torch.cat([d.y for d in draws]),
                    torch.cat([d.params.as_vector() for d in draws]))


@dataclasses.dataclass(frozen=True)
class SeedComponents:
    """What one seed's variants share: the pair ``pool``, the degradation ``estimator`` (with its test
    ``estimator_error`` and the ``estimated`` test vectors) and Noise-I2SB's ``denoiser``."""

    pool: PairPool
    estimator: DegradationEstimator
    estimated: torch.Tensor
    estimator_error: EstimatorError
    denoiser: ImageDenoiser
    seconds: float


# The settings that decide the pool, the estimator and the denoiser (a cached set must match them).
_COMPONENT_SETTINGS = ("train_size", "partners", "noise_level", "estimator_steps", "denoiser_steps")


def prepare_seed(config: MNISTConfig, seed: int, test: TestSet, *, device: str | torch.device = "cpu",
                 progress: bool = True, cache: str | Path | None = None) -> SeedComponents:
    """Draw the pair pool and train the estimator and the denoiser of ``seed``.

    ``cache``: a file; when it exists the trained estimator and denoiser are read
    from it instead of retrained, otherwise they are written to it (atomically).
    """
    start = time.perf_counter()
    images = load_mnist("train").images
    images = images if config.train_size is None else images[: config.train_size]
    pool = make_pair_pool(images, config.partners, seed=seed)
    estimator, denoiser = DegradationEstimator(), ImageDenoiser()
    cache = None if cache is None else Path(cache)
    if cache is not None and cache.exists():
        stored = load_checkpoint(cache)
        changed = [k for k in _COMPONENT_SETTINGS if stored.config.get(k) != getattr(config, k)]
        if changed:
            raise ValueError(f"{cache} was trained with other settings {changed}: "
                             f"{ {k: stored.config.get(k) for k in changed} }; use a new run folder")
        stored.restore(estimator=estimator, denoiser=denoiser)
        estimator, denoiser = estimator.to(device).eval(), denoiser.to(device).eval().requires_grad_(False)
    else:
        estimator = train_degradation_estimator(pool.y, pool.params, steps=config.estimator_steps, seed=seed,
                                                device=device, progress=progress)
        lam = config.noise_level
        denoiser = train_denoiser(images, sigma_range=(lam, lam), steps=config.denoiser_steps, seed=seed,
                                  device=device, progress=progress)
        if cache is not None:
            save_checkpoint(cache, config=config.as_dict(), estimator=estimator, denoiser=denoiser)
    estimated = estimator.predict(test.y.to(device)).cpu()
    error = estimator_error(estimated, test.params, pool.params.mean(dim=0))
    return SeedComponents(pool, estimator, estimated, error, denoiser, time.perf_counter() - start)


# --------------------------------------------------------------------------- one variant


def make_strategy(variant: Variant, config: MNISTConfig, denoiser: ImageDenoiser | None = None) -> PseudoHash:
    """The variant's pseudo-hashing strategy; Noise gets level ``config.noise_level`` and ``denoiser``."""
    if variant.strategy == "noise":
        return get_strategy("noise", level=config.noise_level, denoiser=denoiser)
    return get_strategy(variant.strategy)


def make_network(variant: Variant, config: MNISTConfig, *, seed: int = 0) -> UNet:
    """The variant's U-Net (``config.net``), with the channels its hashing and conditions need; seeded init."""
    channels = make_strategy(variant, config).channels(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet.from_config(config.net, in_channels=channels, out_channels=channels,
                                **variant.conditioning.unet_kwargs(1))


def make_pair_fn(variant: Variant, strategy: PseudoHash, pool: PairPool) -> Callable:
    """``pair_fn(rows, generator) -> (x̂, ŷ, cond)`` for ``training_loop``: the dataset yields pool row indices.

    Hashes the pairs (P-I2SB Alg. 1 line 4; Noise draws its ε from ``generator``) and
    builds the condition from the *true* degradation vectors.
    """

    def pair_fn(rows: torch.Tensor, generator: torch.Generator):
        rows = rows.to(pool.x.device)
        x, y = pool.x[rows], pool.y[rows]
        x_hat, y_hat = strategy.encode(x, y, generator=generator)
        return x_hat, y_hat, variant.conditioning.build(y, pool.params[rows])

    return pair_fn


# Settings that change only how a trained bridge is evaluated, not the training run stored with it.
_EVAL_ONLY = ("nfe", "grid", "eval_size", "classifier_epochs")


@dataclasses.dataclass(frozen=True)
class TrainedVariant:
    """A trained bridge: ``model`` (the EMA ε-network), its ``strategy``, per-step ``losses``, wall ``seconds``."""

    variant: Variant
    model: Parameterization
    strategy: PseudoHash
    schedule: SymmetricSchedule
    losses: list[float]
    seconds: float


def train_variant(variant: Variant, components: SeedComponents, config: MNISTConfig, *, seed: int,
                  device: str | torch.device = "cpu", run_dir: str | Path | None = None,
                  progress: bool = True) -> TrainedVariant:
    """Train one variant on ``components.pool`` with ``train.training_loop`` (P-I2SB Alg. 1).

    ``run_dir``: the variant's folder (config, log, checkpoint); a finished run
    found there is loaded instead of retrained, an interrupted one is resumed.
    """
    start = time.perf_counter()
    device = torch.device(device)
    strategy = make_strategy(variant, config, components.denoiser)
    schedule = config.schedule()
    pool = components.pool.to(device)
    result = training_loop(
        model=EpsParam(make_network(variant, config, seed=seed), schedule),
        schedule=schedule,
        dataset=TensorDataset(torch.arange(len(pool))),
        pair_fn=make_pair_fn(variant, strategy, pool),
        total_steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        lr_warmup_steps=config.warmup_steps,
        ema_decay=config.ema_decay,
        seed=seed,
        device=str(device),
        run_dir=run_dir,
        resume=run_dir is not None,
        log_every=max(1, config.steps // 10),
        progress=progress,
        config={"variant": variant.name,
                "mnist": {k: v for k, v in config.as_dict().items() if k not in _EVAL_ONLY}},
    )
    return TrainedVariant(variant, result.ema.eval(), strategy, schedule, list(result.losses),
                          time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class Restoration:
    """What :func:`restore` returns.

    ``x``: restored digits ``(N, 1, H, W)``, clamped to [-1, 1]; ``x_hat``: the sampled
    hashed endpoints ``(N, c, H, W)``; ``step_error``: ``(nfe,)`` P-I2SB Fig. 6's mean
    RMS prediction error at each step, from ``t = 1`` down (None without ``x_hat_true``);
    ``times``: ``(nfe,)`` the step times; ``sampled``: the sampler's result for the
    first chunk (its trajectory when ``trajectory_stride`` > 0).
    """

    x: torch.Tensor
    x_hat: torch.Tensor
    step_error: torch.Tensor | None
    times: torch.Tensor
    sampled: SampleResult


@torch.no_grad()
def restore(trained: TrainedVariant, y: torch.Tensor, degradation: torch.Tensor | None = None, *, nfe: int,
            grid: str = "quadratic", seed: int = 0, x_hat_true: torch.Tensor | None = None,
            trajectory_stride: int = 0, chunk: int = 256) -> Restoration:
    """Restore degraded digits ``y`` (P-I2SB Alg. 2): ``ŷ = endpoint(y)`` → ``sample`` → ``decode(x̂, y)``.

    ``degradation``: ``(N, 9)`` vectors for the ``da`` condition (the estimator's at
    test time). ``x_hat_true``: the true hashed clean endpoints ``(N, c, H, W)``; when
    given, the per-step error of Fig. 6 is recorded. Sampling noise comes from
    ``seed``; the work runs in chunks of ``chunk`` digits on the model's device.
    """
    param, strategy = trained.model, trained.strategy
    device = next(param.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    xs, x_hats, err_sums, first, times = [], [], None, None, []
    for start in range(0, y.shape[0], chunk):
        y_c = y[start:start + chunk].to(device)
        d_c = None if degradation is None else degradation[start:start + chunk].to(device)
        target = None if x_hat_true is None else x_hat_true[start:start + chunk].to(device)
        errors, times = [], []

        def callback(*, t, x_t, pred_x0):
            times.append(float(t))
            if target is not None:
                # ε_θ − (X_n − X̂0)/σ = (X̂0 − pred_x0)/σ for an ε-network (pred_x0 = X_n − σ ε_θ).
                rms = (target - pred_x0).float().flatten(1).square().mean(dim=1).sqrt()
                errors.append(rms.sum().double().cpu() / trained.schedule.sigma(float(t)).item())

        result = sample(param, strategy.endpoint(y_c), trained.schedule, nfe=nfe, grid=grid,
                        cond=trained.variant.conditioning.build(y_c, d_c), generator=gen, callback=callback,
                        trajectory_stride=trajectory_stride if start == 0 else 0)
        first = result if start == 0 else first
        x_hats.append(result.x0.cpu())
        xs.append(strategy.decode(result.x0, y_c).clamp(-1, 1).cpu())
        if errors:
            err_sums = torch.stack(errors) if err_sums is None else err_sums + torch.stack(errors)
    step_error = None if err_sums is None else err_sums / y.shape[0]
    return Restoration(torch.cat(xs), torch.cat(x_hats), step_error, torch.tensor(times, dtype=torch.float64), first)


# --------------------------------------------------------------------------- metrics


@dataclasses.dataclass(frozen=True)
class ImageMetrics:
    """Label ``accuracy`` of the digit classifier, mean ``psnr`` (dB) and ``ssim`` against the clean digits, and
    ``fd``: the Fréchet distance on our digit-classifier features between the restored and the clean set."""

    accuracy: float
    psnr: float
    ssim: float
    fd: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


METRICS = ("accuracy", "psnr", "ssim", "fd")


def evaluate_restored(restored: torch.Tensor, test: TestSet, classifier: DigitClassifier) -> ImageMetrics:
    """Metrics of ``restored`` ``(N, 1, H, W)`` against ``test`` (``test.y`` itself gives the degraded-input row)."""
    if restored.shape != test.x.shape:
        raise ValueError(f"restored must be shaped like the test digits {tuple(test.x.shape)}; "
                         f"got {tuple(restored.shape)}")
    restored, clean = restored.float().cpu(), test.x.float()
    return ImageMetrics(
        accuracy=classifier_accuracy(classifier, restored, test.labels),
        psnr=float(psnr(restored, clean).clamp(max=100).mean()),
        ssim=float(ssim(restored, clean).mean()),
        fd=classifier_frechet_distance(classifier, restored, clean),
    )


# --------------------------------------------------------------------------- the ablation


@dataclasses.dataclass(frozen=True)
class VariantRecord:
    """One variant on one seed: ``metrics`` (test-time ``da`` from the estimator), ``metrics_true_da`` (the
    true vectors, for ``da`` variants), Fig. 6's ``step_error``, training ``losses``, ``samples`` (the first
    restored digits, for the figure), wall ``train_seconds`` and ``eval_seconds``."""

    variant: str
    seed: int
    metrics: ImageMetrics
    metrics_true_da: ImageMetrics | None
    step_error: torch.Tensor
    times: torch.Tensor
    losses: list[float]
    samples: torch.Tensor
    train_seconds: float
    eval_seconds: float


@dataclasses.dataclass(frozen=True)
class SeedRecord:
    """One seed's shared parts: the estimator's test error and the time to prepare them."""

    seed: int
    estimator_error: EstimatorError
    seconds: float


@dataclasses.dataclass(frozen=True)
class Ablation:
    """Everything :func:`run_ablation` measured. ``degraded``: the degraded-input row (the same test
    degradations for every seed); ``classifier_accuracy``: on the clean test digits."""

    config: MNISTConfig
    variants: list[str]
    seeds: list[int]
    records: list[VariantRecord]
    seed_records: list[SeedRecord]
    degraded: ImageMetrics
    classifier_accuracy: float
    test: TestSet
    device: str
    seconds: float

    def record(self, variant: str, seed: int) -> VariantRecord:
        for r in self.records:
            if r.variant == variant and r.seed == seed:
                return r
        raise KeyError(f"no record for variant {variant!r}, seed {seed}")


def train_and_evaluate(name: str, seed: int, config: MNISTConfig, parts: SeedComponents, test: TestSet,
                       classifier: DigitClassifier, *, device: str | torch.device = "cpu",
                       run_dir: str | Path | None = None, progress: bool = True, n_samples: int = 8,
                       threads: int | None = None) -> VariantRecord:
    """One cell of the ablation: :func:`train_variant`, then :func:`restore` on ``test`` with the estimated
    ``da`` vectors (and, for ``da`` variants, once more with the true ones), :func:`evaluate_restored`.
    ``threads``: set torch's CPU thread count first (worker processes run with one)."""
    if threads is not None:
        torch.set_num_threads(threads)
    variant = VARIANTS[name]
    trained = train_variant(variant, parts, config, seed=seed, device=device, progress=progress, run_dir=run_dir)
    start = time.perf_counter()
    x_hat_true = trained.strategy.encode(test.x, test.y, generator=torch.Generator().manual_seed(seed)).x_hat
    kw = dict(nfe=config.nfe, grid=config.grid, seed=seed)
    out = restore(trained, test.y, parts.estimated, x_hat_true=x_hat_true, **kw)
    true_da = None
    if variant.da:
        true_da = evaluate_restored(restore(trained, test.y, test.params, **kw).x, test, classifier)
    return VariantRecord(name, seed, evaluate_restored(out.x, test, classifier), true_da, out.step_error, out.times,
                         trained.losses, out.x[:n_samples], trained.seconds, time.perf_counter() - start)


def run_ablation(config: MNISTConfig = MNISTConfig(), *, seeds: Sequence[int] = (0,),
                 variants: Sequence[str] = tuple(VARIANTS), device: str | torch.device = "cpu",
                 run_dir: str | Path | None = None, workers: int = 1, progress: bool = True,
                 on_record: Callable[[VariantRecord], None] | None = None, n_samples: int = 8) -> Ablation:
    """Train and evaluate every variant for every seed; the one entry point of ``toy/mnist.py`` and notebook 05.

    Per seed: one pair pool, estimator and denoiser shared by the variants
    (:func:`prepare_seed`); per variant: :func:`train_and_evaluate`. ``run_dir``:
    checkpoints per seed and variant (a rerun into the same folder resumes or reloads
    them). ``workers > 1`` (CPU only) runs the cells in that many spawned processes of
    one thread each: on 2 idle cores two such processes did twice the steps of one,
    while one process with 2 threads did 1.35×. ``on_record`` is called with each
    finished cell, in order. Everything is checked before anything is trained.
    """
    variants = check_variants(variants)
    seeds = list(dict.fromkeys(seeds))
    if not seeds or any(type(s) is not int or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0; got {seeds}")
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    device = torch.device(device)
    workers = 1 if device.type != "cpu" else min(workers, len(seeds) * len(variants))
    run_dir = None if run_dir is None else Path(run_dir)
    start = time.perf_counter()
    test = make_test_set(config.eval_size)
    train = load_mnist("train")
    classifier = train_digit_classifier(train.images, train.labels, epochs=config.classifier_epochs,
                                        seed=CLASSIFIER_SEED, device=device, progress=progress)
    full_test = load_mnist("test")
    clean_accuracy = classifier_accuracy(classifier, full_test.images, full_test.labels)
    degraded = evaluate_restored(test.y, test, classifier)

    def cells():
        """(seed, variant, keyword arguments of train_and_evaluate), preparing each seed's parts on the way."""
        for seed in seeds:
            seed_dir = None if run_dir is None else run_dir / f"seed{seed}"
            parts = prepare_seed(config, seed, test, device=device, progress=progress,
                                 cache=None if seed_dir is None else seed_dir / "components.pt")
            seed_records.append(SeedRecord(seed, parts.estimator_error, parts.seconds))
            for name in variants:
                yield seed, name, dict(name=name, seed=seed, config=config, parts=parts, test=test,
                                       classifier=classifier, device=device, n_samples=n_samples,
                                       run_dir=None if seed_dir is None else seed_dir / name)

    records, seed_records = [], []

    def finish(record: VariantRecord) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    if workers == 1:
        for seed, name, kwargs in cells():
            if progress:
                tqdm.write(f"seed {seed} · {VARIANTS[name].label}: {config.steps} training steps")
            finish(train_and_evaluate(**kwargs, progress=progress))
    else:
        # spawn, not fork: a forked child inherits torch's thread pool in an undefined state.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(train_and_evaluate, **kwargs, progress=False, threads=1)
                       for _, _, kwargs in cells()]
            with tqdm(total=len(futures), desc=f"variants ({workers} processes)", unit="variant",
                      disable=not progress) as bar:
                for future in futures:
                    record = future.result()
                    bar.set_postfix_str(f"{record.variant} seed {record.seed}: acc {record.metrics.accuracy:.3f}")
                    bar.update()
                    finish(record)
    return Ablation(config, variants, seeds, records, seed_records, degraded, clean_accuracy,
                    test, str(device), time.perf_counter() - start)
