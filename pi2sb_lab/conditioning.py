"""The condition guidance of P-I2SB Table 3, and the degradation estimator that feeds it at test time.

Table 3 ablates what the bridge network sees besides ``X_t`` and ``t``:

* ``none``  — (a) Vanilla-I2SB: nothing;
* ``lq``    — (b): the raw degraded image ``y`` concatenated to the network's input
  channels ("LQ images as the condition in forward and reverse process");
* ``lq+da`` — (c)–(f): also a "degradation-aware representation": here the
  normalized degradation parameters of P-I2SB eq. 19
  (``DegradationParams.as_vector()``, ``(B, 9)`` in [0, 1]), embedded by the
  U-Net's MLP and added to its time embedding.

:meth:`Conditioning.build` turns ``y`` (and the parameter vector) into the
``cond`` argument of the project's U-Net convention (``None``, a Tensor, or a
dict with ``"image"`` / ``"degradation"``).

At training time the true parameters of each degradation are known. A blind
restorer does not know them at test time, so the ``da`` condition then comes
from :class:`DegradationEstimator`, a small CNN trained to predict the vector
from ``y`` alone (:func:`train_degradation_estimator`); :func:`estimator_error`
reports how well it does, per parameter and against the trivial guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .degrade import DEGRADATION_PARAM_DIM, DEGRADATION_PARAM_NAMES
from .fit import fit_steps, seeded_init

__all__ = [
    "Conditioning",
    "CONDITIONINGS",
    "get_conditioning",
    "DegradationEstimator",
    "train_degradation_estimator",
    "EstimatorError",
    "estimator_error",
]


@dataclass(frozen=True)
class Conditioning:
    """Which conditions a bridge network receives: ``lq`` (the image ``y``), ``da`` (the parameter vector)."""

    lq: bool = False
    da: bool = False

    @property
    def name(self) -> str:
        """``"none"``, ``"lq"``, ``"da"`` or ``"lq+da"``."""
        parts = [p for p, on in (("lq", self.lq), ("da", self.da)) if on]
        return "+".join(parts) or "none"

    def unet_kwargs(self, image_channels: int = 1) -> dict[str, int]:
        """``cond_channels`` and ``degradation_dim`` for ``UNet(...)`` when ``y`` has ``image_channels``."""
        return {"cond_channels": image_channels if self.lq else 0,
                "degradation_dim": DEGRADATION_PARAM_DIM if self.da else 0}

    def build(self, y: torch.Tensor, degradation: torch.Tensor | None = None):
        """The U-Net ``cond`` for degraded images ``y`` ``(B, C, H, W)``.

        ``degradation``: ``(B, DEGRADATION_PARAM_DIM)`` in [0, 1] — the true vector
        (training) or :class:`DegradationEstimator`'s (test); needed only when ``da``.
        Returns ``None`` (no condition), ``y`` itself (``lq`` only), or a dict.
        """
        if not (self.lq or self.da):
            return None
        if self.da:
            expected = (y.shape[0], DEGRADATION_PARAM_DIM)
            if degradation is None or tuple(degradation.shape) != expected:
                got = None if degradation is None else tuple(degradation.shape)
                raise ValueError(f"the {self.name!r} condition needs degradation of shape {expected} "
                                 f"(DegradationParams.as_vector() or a DegradationEstimator's output); got {got}")
        if not self.da:
            return y
        cond = {"degradation": degradation.to(device=y.device, dtype=y.dtype)}
        if self.lq:
            cond["image"] = y
        return cond


CONDITIONINGS: dict[str, Conditioning] = {
    "none": Conditioning(),                   # Table 3 (a)
    "lq": Conditioning(lq=True),              # Table 3 (b)
    "lq+da": Conditioning(lq=True, da=True),  # Table 3 (c)–(f)
}


def get_conditioning(name: str) -> Conditioning:
    """The :data:`CONDITIONINGS` entry called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {name!r}; valid names: {list(CONDITIONINGS)}")
    return CONDITIONINGS[name]


# --------------------------------------------------------------------------- the estimator


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
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = torch.cat([self(chunk.to(device)).to(y.device) for chunk in y.split(batch_size)])
        self.train(was_training)
        return out


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

    Adam on the mean squared error of the vector, ``steps`` batches drawn with
    replacement; the initialisation and the batches depend only on ``seed``.
    Returns the estimator in eval mode.
    """
    if y.ndim != 4 or params.shape != (y.shape[0], DEGRADATION_PARAM_DIM):
        raise ValueError(f"y must be (N, C, H, W) and params (N, {DEGRADATION_PARAM_DIM}); "
                         f"got {tuple(y.shape)} and {tuple(params.shape)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1; got {steps} and {batch_size}")
    device = torch.device(device)
    model = seeded_init(lambda: DegradationEstimator(y.shape[1]), seed, device)

    def batch_loss(gen: torch.Generator) -> torch.Tensor:
        rows = torch.randint(y.shape[0], (batch_size,), generator=gen)
        return F.mse_loss(model(y[rows].to(device)), params[rows].to(device))

    return fit_steps(model, batch_loss, steps=steps, lr=lr, seed=seed, desc="degradation estimator",
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
