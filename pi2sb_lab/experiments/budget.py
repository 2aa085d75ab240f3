"""P-I2SB's verdict against the training budget: the MNIST variants measured at several step counts.

The project's MNIST study (``mnist_ablation``) finds that pseudo-hashing does not help after
300 training steps. Here each variant × seed is trained once up to the largest budget and
its EMA model is restored and measured each time training passes a budget (the
``training_loop`` callback). With a constant learning rate after warm-up and the step-seeded
random streams of ``training_loop``, the model seen at step 300 of a 1,500-step run *is* the
model a 300-step run ends with, so one run gives every budget.

Noise-I2SB (Table 3 (d), Fig. 3b's Noise) is decoded twice: by the project's learned
one-step denoiser (``nets.denoiser``) and, as P-I2SB eq. 18 does, by DDIM on an
unconditional VP prior (``diffusion.DDIMDenoiser``: enter the chain where σ/α = λ, walk DDIM
to t = 0); the prior is trained once per seed on clean digits (``editing.train_prior``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.mnist import load_mnist
from ..diffusion import DDIMDenoiser, VPObjective
from ..metrics import classifier_accuracy
from ..nets.classifier import DigitClassifier, train_digit_classifier
from ..nets.unet import UNet
from ..train import TrainState, training_loop
from .cells import CpuClock, check_seeds, run_cells
from .editing import EditConfig, train_prior
from .mnist import CLASSIFIER_SEED, VARIANTS, MNISTConfig, SeedComponents, TestSet, TrainedVariant, check_variants, \
    make_test_set, pool_dataset, prepare_seed, variant_recipe
from .mnist_eval import ImageMetrics, evaluate_restored, restore_variant

__all__ = ["BUDGETS", "BudgetRecord", "run_budget_cell", "BudgetStudy", "run_budget_study"]

BUDGETS = (300, 1500)


@dataclasses.dataclass(frozen=True)
class BudgetRecord:
    """One variant on one seed: ``metrics[budget]`` (test-time ``da`` estimated), for Noise variants also
    ``ddim_metrics[budget]`` (decoded by DDIM on the VP prior), the step ``losses``, ``cpu_seconds``."""

    variant: str
    seed: int
    metrics: dict[int, ImageMetrics]
    ddim_metrics: dict[int, ImageMetrics] | None
    losses: list[float]
    cpu_seconds: float


def run_budget_cell(*, variant: str, seed: int, config: MNISTConfig, budgets: Sequence[int], parts: SeedComponents,
                    test: TestSet, classifier: DigitClassifier, prior_state: dict | None, prior_config: EditConfig,
                    ddim_nfe: int, device: str | torch.device = "cpu", progress: bool = False) -> BudgetRecord:
    """Train ``variant`` up to ``max(budgets)`` steps (P-I2SB Alg. 1, ``mnist.variant_recipe``) and measure its EMA
    model at every budget on ``test`` (``mnist_eval.restore_variant`` with the estimated ``da`` vectors)."""
    clock, device = CpuClock(), torch.device(device)
    v = VARIANTS[variant]
    recipe = variant_recipe(v, config, parts.denoiser)
    ddim_recipe = None
    if v.strategy == "noise":
        prior = VPObjective(prior_config.schedule(), prediction=prior_config.prediction).prepare(
            UNet.from_config(prior_config.net))
        prior.load_state_dict(prior_state)
        ddim_recipe = recipe.with_denoiser(DDIMDenoiser(prior.to(device).eval(), prior_config.schedule(),
                                                        nfe=ddim_nfe))
    metrics, ddim_metrics = {}, ({} if ddim_recipe is not None else None)

    def measure(state: TrainState) -> None:
        if state.step not in budgets:
            return
        kw = dict(nfe=config.nfe, grid=config.grid, seed=seed)
        trained = TrainedVariant(v, state.ema.eval(), recipe, [], 0.0)
        metrics[state.step] = evaluate_restored(restore_variant(trained, test.y, parts.estimated, **kw).x, test,
                                                classifier)
        if ddim_recipe is not None:
            trained = dataclasses.replace(trained, recipe=ddim_recipe)
            ddim_metrics[state.step] = evaluate_restored(restore_variant(trained, test.y, parts.estimated, **kw).x,
                                                         test, classifier)

    pool = parts.pool.to(device)
    every = math.gcd(*budgets)
    settings = config.train_settings(total_steps=max(budgets), seed=seed, device=str(device), progress=progress,
                                     callback_every=every)
    result = training_loop(settings, model=recipe.network(seed), schedule=recipe.bridge, dataset=pool_dataset(pool),
                           pair_fn=recipe.pool_pair_fn(pool.x, pool.y, pool.params), callback=measure)
    return BudgetRecord(variant, seed, metrics, ddim_metrics, list(result.losses), clock.cpu)


def _prior_state(**kwargs) -> tuple[dict, float]:
    clock = CpuClock()
    return {k: v.cpu() for k, v in train_prior(**kwargs).state_dict().items()}, clock.cpu


@dataclasses.dataclass(frozen=True)
class BudgetStudy:
    config: MNISTConfig
    prior_config: EditConfig
    budgets: list[int]
    variants: list[str]
    seeds: list[int]
    records: list[BudgetRecord]
    degraded: ImageMetrics
    classifier_accuracy: float
    ddim_nfe: int
    device: str
    seconds: float
    cpu_seconds: float

    def record(self, variant: str, seed: int) -> BudgetRecord:
        for r in self.records:
            if r.variant == variant and r.seed == seed:
                return r
        raise KeyError(f"no record for variant {variant!r}, seed {seed}")


def run_budget_study(config: MNISTConfig = MNISTConfig(), *, budgets: Sequence[int] = BUDGETS,
                     variants: Sequence[str] = ("a-vanilla", "res"), seeds: Sequence[int] = (0, 1, 2),
                     prior_config: EditConfig = EditConfig(), ddim_nfe: int = 10,
                     device: str | torch.device = "cpu", run_dir: str | Path | None = None, workers: int = 1,
                     progress: bool = True) -> BudgetStudy:
    """Every variant × seed trained to ``max(budgets)`` and measured at each budget (``toy/baselines.py budget``).
    Per seed the pair pool, estimator and learned denoiser come from ``mnist.prepare_seed`` (cached in
    ``run_dir``); a VP prior is trained per seed when a Noise variant is asked for."""
    variants, seeds = check_variants(variants), check_seeds(seeds)
    budgets = sorted(set(budgets))
    if not budgets or any(type(b) is not int or b < 1 for b in budgets):
        raise ValueError(f"budgets must be a non-empty list of ints >= 1; got {budgets}")
    if type(ddim_nfe) is not int or ddim_nfe < 1:
        raise ValueError(f"ddim_nfe must be an int >= 1; got {ddim_nfe!r}")
    clock, device = CpuClock(), torch.device(device)
    run_dir = None if run_dir is None else Path(run_dir)
    test = make_test_set(config.eval_size)
    train = load_mnist("train")
    classifier = train_digit_classifier(train.images, train.labels, epochs=config.classifier_epochs,
                                        seed=CLASSIFIER_SEED, device=device, progress=progress).cpu()
    clean_accuracy = classifier_accuracy(classifier, load_mnist("test").images, load_mnist("test").labels)
    degraded = evaluate_restored(test.y, test, classifier)
    parts = {s: prepare_seed(config, s, test, device=device, progress=progress,
                             cache=None if run_dir is None else run_dir / f"seed{s}" / "components.pt") for s in seeds}
    need_prior = any(VARIANTS[v].strategy == "noise" for v in variants)
    priors = run_cells(_prior_state, [dict(config=prior_config, seed=s, device=device, progress=progress,
                                           run_dir=None if run_dir is None else run_dir / f"seed{s}" / "prior")
                                      for s in seeds], workers=workers, device=device, progress=progress,
                       desc="VP priors") if need_prior else [(None, 0.0)] * len(seeds)
    cells = [dict(variant=v, seed=s, config=config, budgets=budgets, parts=parts[s], test=test,
                  classifier=classifier, prior_state=priors[i][0], prior_config=prior_config, ddim_nfe=ddim_nfe,
                  device=device) for i, s in enumerate(seeds) for v in variants]
    records = run_cells(run_budget_cell, cells, workers=workers, device=device, progress=progress, desc="variants",
                        label=lambda c: f"{c['variant']} · seed {c['seed']}")
    parallel = workers > 1 and device.type == "cpu"
    cpu = clock.cpu + parallel * (sum(p[1] for p in priors) + sum(r.cpu_seconds for r in records))
    return BudgetStudy(config, prior_config, budgets, variants, seeds, records, degraded, clean_accuracy, ddim_nfe,
                       str(device), clock.wall, cpu)
