"""The MNIST ablation of P-I2SB (Table 3 (a)–(f), Fig. 3b): every variant × seed trained, restored, measured.

``run_ablation`` is the one entry point of ``toy/mnist.py`` (``make demo``) and
notebook 05's batch path. Per seed it draws one pair pool and trains one
degradation estimator and one Noise denoiser, shared by the variants
(``mnist.prepare_seed``); per variant it trains the bridge, restores the fixed
test set with the estimated ``da`` vectors (and for ``da`` variants once more
with the true ones) and measures it (``mnist_eval.evaluate_restored``). Cells can run
in parallel worker processes. The results are one :class:`Ablation`; ``mnist_report.write_report``
turns it into the run folder's tables and figures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..data.mnist import load_mnist
from ..metrics import classifier_accuracy
from ..nets.classifier import DigitClassifier, train_digit_classifier
from ..nets.estimator import EstimatorError
from .mnist import CLASSIFIER_SEED, VARIANTS, MNISTConfig, SeedComponents, TestSet, check_variants, make_test_set, \
    prepare_seed, train_variant
from .cells import run_cells
from .mnist_eval import ImageMetrics, evaluate_restored, restore_variant

__all__ = ["VariantRecord", "SeedRecord", "Ablation", "train_and_evaluate", "run_ablation"]


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
    """Everything :func:`run_ablation` measured, the one results object its report reads. ``degraded``: the
    degraded-input row (the same test degradations for every seed); ``classifier_accuracy``: on the clean
    test digits; ``runs[variant][seed]``: the records by key (built once from ``records``, in seed order)."""

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
    runs: dict[str, dict[int, VariantRecord]] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key = {(r.variant, r.seed): r for r in self.records}
        missing = [(v, s) for v in self.variants for s in self.seeds if (v, s) not in by_key]
        if missing:
            raise ValueError(f"records lack the variant/seed cells {missing}")
        object.__setattr__(self, "runs", {v: {s: by_key[v, s] for s in self.seeds} for v in self.variants})

    def record(self, variant: str, seed: int) -> VariantRecord:
        """``runs[variant][seed]``, with a ``KeyError`` that names both."""
        try:
            return self.runs[variant][seed]
        except KeyError:
            raise KeyError(f"no record for variant {variant!r}, seed {seed}") from None


def train_and_evaluate(name: str, seed: int, config: MNISTConfig, parts: SeedComponents, test: TestSet,
                       classifier: DigitClassifier, *, device: str | torch.device = "cpu",
                       run_dir: str | Path | None = None, progress: bool = True, n_samples: int = 8,
                       ignore_fingerprint: bool = False) -> VariantRecord:
    """One cell of the ablation: ``mnist.train_variant``, then ``mnist_eval.restore_variant`` on ``test`` with the estimated
    ``da`` vectors (and, for ``da`` variants, once more with the true ones), ``mnist_eval.evaluate_restored``.
    Worker processes run it through ``cells.run_cells``, with one thread each."""
    variant = VARIANTS[name]
    trained = train_variant(variant, parts, config, seed=seed, device=device, progress=progress, run_dir=run_dir,
                            ignore_fingerprint=ignore_fingerprint)
    start = time.perf_counter()
    x_hat_true = trained.strategy.encode(test.x, test.y, generator=torch.Generator().manual_seed(seed)).x_hat
    kw = dict(nfe=config.nfe, grid=config.grid, seed=seed)
    out = restore_variant(trained, test.y, parts.estimated, x_hat_true=x_hat_true, **kw)
    true_da = None
    if variant.da:
        true_da = evaluate_restored(restore_variant(trained, test.y, test.params, **kw).x, test, classifier)
    return VariantRecord(name, seed, evaluate_restored(out.x, test, classifier), true_da, out.step_error, out.times,
                         trained.losses, out.x[:n_samples], trained.seconds, time.perf_counter() - start)


def run_ablation(config: MNISTConfig = MNISTConfig(), *, seeds: Sequence[int] = (0,),
                 variants: Sequence[str] = tuple(VARIANTS), device: str | torch.device = "cpu",
                 run_dir: str | Path | None = None, workers: int = 1, progress: bool = True,
                 on_record: Callable[[VariantRecord], None] | None = None, n_samples: int = 8,
                 ignore_fingerprint: bool = False) -> Ablation:
    """Train and evaluate every variant for every seed; the one entry point of ``toy/mnist.py`` and notebook 05.

    Per seed: one pair pool, estimator and denoiser shared by the variants
    (``mnist.prepare_seed``); per variant: :func:`train_and_evaluate`. ``run_dir``:
    checkpoints per seed and variant (a rerun into the same folder resumes or reloads
    them). ``workers > 1`` (CPU only) runs the cells in that many spawned processes of
    one thread each: on 2 idle cores two such processes did twice the steps of one,
    while one process with 2 threads did 1.35×. ``on_record`` is called with each
    finished cell, in order. Everything is checked before anything is trained.
    ``ignore_fingerprint``: reuse checkpoints in ``run_dir`` that belong to another variant or data set
    (refused otherwise, see ``train.training_loop``).
    """
    variants = check_variants(variants)
    seeds = list(dict.fromkeys(seeds))
    if not seeds or any(type(s) is not int or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0; got {seeds}")
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    device = torch.device(device)
    run_dir = None if run_dir is None else Path(run_dir)
    start = time.perf_counter()
    test = make_test_set(config.eval_size, mnist_root=config.mnist_root)
    train = load_mnist("train", root=config.mnist_root)
    classifier = train_digit_classifier(train.images, train.labels, epochs=config.classifier_epochs,
                                        seed=CLASSIFIER_SEED, device=device, progress=progress)
    full_test = load_mnist("test", root=config.mnist_root)
    clean_accuracy = classifier_accuracy(classifier, full_test.images, full_test.labels)
    degraded = evaluate_restored(test.y, test, classifier)

    cells, seed_records = [], []
    for seed in seeds:  # each seed's pair pool, estimator and denoiser, shared by its variants
        seed_dir = None if run_dir is None else run_dir / f"seed{seed}"
        parts = prepare_seed(config, seed, test, device=device, progress=progress,
                             cache=None if seed_dir is None else seed_dir / "components.pt")
        seed_records.append(SeedRecord(seed, parts.estimator_error, parts.seconds))
        cells += [dict(name=name, seed=seed, config=config, parts=parts, test=test, classifier=classifier,
                       device=device, n_samples=n_samples, run_dir=None if seed_dir is None else seed_dir / name,
                       ignore_fingerprint=ignore_fingerprint, progress=progress) for name in variants]
    records = run_cells(train_and_evaluate, cells, workers=workers, device=device, progress=progress,
                        desc="variants", label=lambda c: f"seed {c['seed']} · {VARIANTS[c['name']].label}",
                        on_result=on_record)
    return Ablation(config, variants, seeds, records, seed_records, degraded, clean_accuracy,
                    test, str(device), time.perf_counter() - start)
