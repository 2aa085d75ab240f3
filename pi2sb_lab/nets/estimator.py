"""The degradation estimator: ``y`` → P-I2SB eq. 19's parameter vector, the ``da`` condition at test time.

At training time the true parameters of each degradation are known and fed to
the bridge (``conditioning.py``, Table 3 (c)–(f)); a blind restorer does not know
them, so :class:`DegradationEstimator` predicts them from ``y`` alone and
:func:`estimator_error` reports how well, per parameter and against the trivial
guess (the training mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..degrade import DEGRADATION_PARAM_DIM, DEGRADATION_PARAM_NAMES
from . import predict_in_chunks, seeded

__all__ = ["DegradationEstimator", "train_degradation_estimator", "EstimatorError", "estimator_error"]


class DegradationEstimator(nn.Module):
    """A small CNN ``y (B, C, H, W) -> (B, DEGRADATION_PARAM_DIM)`` in [0, 1] (a sigmoid output).

    Four 3×3 convolutions (16, 32, 64, 64 channels; the last three with stride 2),
    each followed by GroupNorm and ReLU, then the spatial mean and max of the
    features (blur, noise and JPEG are global properties of an image, wherever
    the strokes are) into a 2-layer MLP.
    """

    def __init__(self, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.in_channels = in_channels
        w = width
        layers, channels = [], in_channels
        for out, stride in ((w, 1), (2 * w, 2), (4 * w, 2), (4 * w, 2)):
            # GroupNorm: without it the noise level δ was not learned at all in 400 steps (MAE 0.25 = the
            # constant guess's), with it 0.12.
            layers += [nn.Conv2d(channels, out, 3, stride=stride, padding=1), nn.GroupNorm(8, out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.ReLU(), nn.Linear(4 * w, DEGRADATION_PARAM_DIM))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 4 or y.shape[1] != self.in_channels:
            raise ValueError(f"y must be (B, {self.in_channels}, H, W); got {tuple(y.shape)}")
        h = self.features(y)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return torch.sigmoid(self.head(pooled))

    @torch.no_grad()
    def predict(self, y: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
        """Estimated vectors ``(B, DEGRADATION_PARAM_DIM)`` on ``y``'s device (eval mode, batched, no grad)."""
        return predict_in_chunks(self, self, y, batch_size=batch_size)


def train_degradation_estimator(
    y: torch.Tensor,
    params: torch.Tensor,
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DegradationEstimator:
    """Fit a :class:`DegradationEstimator` to pairs (``y`` ``(N, C, H, W)``, ``params`` ``(N, P)`` in [0, 1]).

    Adam on the mean squared error of the vector, ``steps`` shuffled batches, through
    ``train.training_loop``; the initialisation and the batches depend only on ``seed``.
    Returns the estimator in eval mode.
    """
    from ..train import fit_supervised

    if y.ndim != 4 or params.shape != (y.shape[0], DEGRADATION_PARAM_DIM):
        raise ValueError(f"y must be (N, C, H, W) and params (N, {DEGRADATION_PARAM_DIM}); "
                         f"got {tuple(y.shape)} and {tuple(params.shape)}")
    if steps < 1 or batch_size < 1 or y.shape[0] < batch_size:
        raise ValueError(f"steps and batch_size must be >= 1 and y must hold >= batch_size images; got {steps}, "
                         f"{batch_size} and {y.shape[0]}")
    device = torch.device(device)
    y, params = y.to(device), params.to(device)
    model = seeded(lambda: DegradationEstimator(y.shape[1]), seed, device)

    def pair_fn(rows: torch.Tensor, generator: torch.Generator):
        return y[rows], params[rows]

    return fit_supervised(model, y.shape[0], pair_fn, lambda m, yy, p: F.mse_loss(m(yy), p), steps=steps,
                          batch_size=batch_size, lr=lr, seed=seed, device=device, name="degradation estimator",
                          progress=progress)


@dataclass(frozen=True)
class EstimatorError:
    """Test error of a degradation estimator, as mean absolute errors of the [0, 1] vector.

    ``per_param``: MAE of each column (``DEGRADATION_PARAM_NAMES``); ``mae``: their
    mean over the columns that vary in the test set (a constant column, e.g.
    ``gray`` when the preset never grays, is left out); ``baseline_mae``: the same
    mean for the trivial estimator that always answers the training mean.
    """

    per_param: dict[str, float]
    mae: float
    baseline_mae: float
    varying: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"per_param": self.per_param, "mae": self.mae, "baseline_mae": self.baseline_mae,
                "varying": list(self.varying)}


def estimator_error(predicted: torch.Tensor, true: torch.Tensor, train_mean: torch.Tensor) -> EstimatorError:
    """Compare ``predicted`` with ``true`` vectors (both ``(N, P)``); the baseline answers ``train_mean`` ``(P,)``."""
    if predicted.shape != true.shape or predicted.ndim != 2 or predicted.shape[1] != DEGRADATION_PARAM_DIM:
        raise ValueError(f"predicted and true must both be (N, {DEGRADATION_PARAM_DIM}); "
                         f"got {tuple(predicted.shape)} and {tuple(true.shape)}")
    predicted, true = predicted.double().cpu(), true.double().cpu()
    err = (predicted - true).abs().mean(dim=0)
    base = (train_mean.double().cpu().reshape(1, -1) - true).abs().mean(dim=0)
    varying = true.std(dim=0) > 0 if true.shape[0] > 1 else torch.ones(true.shape[1], dtype=torch.bool)
    if not varying.any():
        varying = torch.ones_like(varying)
    return EstimatorError(
        per_param={name: float(e) for name, e in zip(DEGRADATION_PARAM_NAMES, err)},
        mae=float(err[varying].mean()),
        baseline_mae=float(base[varying].mean()),
        varying=tuple(n for n, v in zip(DEGRADATION_PARAM_NAMES, varying.tolist()) if v),
    )
