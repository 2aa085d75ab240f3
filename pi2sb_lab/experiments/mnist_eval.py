"""Restoring and measuring one trained MNIST variant: ``pipeline.restore`` with P-I2SB Fig. 6's step error,
then the study's metrics (digit accuracy, PSNR, SSIM, FD on our digit-classifier features)."""

from __future__ import annotations

import dataclasses

import torch

from ..metrics import classifier_accuracy, classifier_frechet_distance, psnr, ssim
from ..nets.classifier import DigitClassifier
from ..sampler import SampleResult
from ..schedule import time_grid
from .mnist import TestSet, TrainedVariant

__all__ = ["VariantRestoration", "restore_variant", "METRICS", "ImageMetrics", "evaluate_restored"]


@dataclasses.dataclass(frozen=True)
class VariantRestoration:
    """What :func:`restore_variant` returns.

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


class _StepError:
    """The sampler callback of Fig. 6: sums ``RMS(X̂0 − pred_x0)`` per step on the model's device (no host
    sync per step); ε_θ − (X_n − X̂0)/σ = (X̂0 − pred_x0)/σ for an ε-network, divided by σ afterwards."""

    def __init__(self, target: torch.Tensor, nfe: int) -> None:
        self.target, self.sums, self.n, self.rows = target, torch.zeros(nfe, dtype=torch.float64,
                                                                         device=target.device), 0, None

    def __call__(self, *, t, x_t, pred_x0, rows) -> None:
        if rows != self.rows:
            self.rows, self.n = rows, 0
        rms = (self.target[rows] - pred_x0).float().flatten(1).square().mean(dim=1).sqrt()
        self.sums[self.n] += rms.sum().double()
        self.n += 1


@torch.no_grad()
def restore_variant(trained: TrainedVariant, y: torch.Tensor, degradation: torch.Tensor | None = None, *, nfe: int,
                    grid: str = "quadratic", seed: int = 0, x_hat_true: torch.Tensor | None = None,
                    trajectory_stride: int = 0, chunk: int = 256) -> VariantRestoration:
    """Restore degraded digits ``y`` with one trained variant: its ``Recipe.restore`` (P-I2SB Alg. 2).

    ``degradation``: ``(N, 9)`` vectors for the ``da`` condition (the estimator's at
    test time). ``x_hat_true``: the true hashed clean endpoints ``(N, c, H, W)``; when
    given, the per-step error of Fig. 6 is recorded. Sampling noise comes from
    ``seed``; the work runs in chunks of ``chunk`` digits on the model's device.
    """
    device = next(trained.model.parameters()).device
    recorder = None if x_hat_true is None else _StepError(x_hat_true.to(device), nfe)
    out = trained.recipe.restore(trained.model, y, nfe=nfe, grid=grid, degradation=degradation, seed=seed,
                                 callback=recorder, trajectory_stride=trajectory_stride, chunk=chunk,
                                 clamp=(-1.0, 1.0))
    times = time_grid(nfe, grid).t.flip(0)[:-1]
    step_error = None if recorder is None else recorder.sums.cpu() / trained.schedule.sigma(times) / y.shape[0]
    return VariantRestoration(out.x.cpu(), out.x_hat.cpu(), step_error, times, out.sampled)


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
