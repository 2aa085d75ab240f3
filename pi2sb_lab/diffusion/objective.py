"""The VP diffusion's training objective (DDPM's simple loss, ε-prediction) as ``train.training_loop``'s objective.

    t ~ U(0, 1],  ε ~ N(0, I),  x_t = α_t x0 + σ_t ε,  loss = ‖model(x_t, t, cond) − ε‖²   (DDPM eq. 14)

:class:`VPObjective` trains an unconditional prior (``pair_fn`` returns ``(x0,)`` or
``(x0, cond)``); :class:`PaletteObjective` trains Palette's conditional model on the
*bridge's* pairs: ``pair_fn`` returns ``(x0, x1, cond)`` exactly as for I2SB, and the
degraded ``x1`` becomes the image condition concatenated to the U-Net input
(Palette; I2SB App. C.1 "concatenate the first layer with conditional inputs"), so
both models see the same pairs and differ in their boundary distribution,
``p_B(·|X0)`` vs ``N(0, I)`` (I2SB §5.2, Fig. 8).

``prediction``: "eps" (the default; DDPM, ODEdit, I2SB's Palette) or "v" (Salimans & Ho
2022: the backbone predicts v = α_t ε − σ_t x0, loss ‖v̂ − v‖²). ε-prediction is
ill-conditioned at high noise: x̂0 = (x_t − σ_t ε̂)/α_t multiplies an ε error by
σ_t/α_t, up to ≈ 152 at t = 1 — a short toy training run leaves x̂0 there worse than
the mean image. v-prediction reads x̂0 = α_t x_t − σ_t v̂ instead. ``prepare`` wraps a
v-backbone in :class:`VPrediction`, which returns ε̂ = σ_t x_t + α_t v̂, so every sampler
reads either model the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from ..batch import expand_like, randn_like
from ..objective import sample_t
from .sampling import _net_time
from .schedule import VPSchedule

__all__ = ["vp_loss", "VPrediction", "PREDICTIONS", "VPObjective", "PaletteObjective", "palette_cond"]

PREDICTIONS = ("eps", "v")


class VPrediction(nn.Module):
    """A v-prediction backbone read as ε: ``forward(x_t, t, cond) = σ_t x_t + α_t · backbone(x_t, t, cond)``
    (α² + σ² = 1, so v = α ε − σ x0 gives back ε exactly). ``backbone`` is what the loss trains."""

    def __init__(self, backbone: nn.Module, schedule: VPSchedule) -> None:
        super().__init__()
        self.backbone, self.schedule = backbone, schedule

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        t64 = torch.as_tensor(t).double().reshape(-1)
        alpha, sigma = expand_like(self.schedule._alpha(t64), x_t), expand_like(self.schedule._sigma(t64), x_t)
        return sigma * x_t + alpha * self.backbone(x_t, t, cond)


def vp_loss(model, x0: torch.Tensor, schedule: VPSchedule, *, cond=None, t: torch.Tensor | None = None,
            generator: torch.Generator | None = None, time_generator: torch.Generator | None = None,
            reduction: str = "mean", prediction: str = "eps") -> torch.Tensor:
    """DDPM's simple loss on one batch: ``‖ε_θ(α_t x0 + σ_t ε, t, cond) − ε‖²`` averaged per sample.

    ``t``: ``(B,)`` times in [0, 1] (default t ~ U(0, 1] from ``time_generator``); ε from ``generator``.
    ``reduction``: "mean" (a scalar) or "none" (one value per sample). ``prediction="v"``: ``model``
    is a :class:`VPrediction` (or a bare v-backbone) and the loss is ‖v̂ − (α_t ε − σ_t x0)‖².
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {list(PREDICTIONS)}; got {prediction!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be one of ['mean', 'none']; got {reduction!r}")
    if not torch.is_tensor(x0) or x0.ndim < 2:
        raise ValueError(f"x0 must be a batched tensor (B, ...); got {getattr(x0, 'shape', type(x0).__name__)}")
    if t is None:
        t = sample_t(x0.shape[0], generator=time_generator, device=x0.device)
    elif t.shape != (x0.shape[0],) or not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"t must have shape ({x0.shape[0]},) with values in [0, 1]; got shape {tuple(t.shape)}")
    eps = randn_like(x0, generator)
    t64 = t.double()
    x_t = expand_like(schedule._alpha(t64), x0) * x0 + expand_like(schedule._sigma(t64), x0) * eps
    if prediction == "v":
        model = model.backbone if isinstance(model, VPrediction) else model
        eps = expand_like(schedule._alpha(t64), x0) * eps - expand_like(schedule._sigma(t64), x0) * x0  # the v target
    out = model(x_t, _net_time(t, x0), cond)
    if out.shape != x0.shape:
        raise ValueError(f"the model must return ε shaped like x_t {tuple(x0.shape)}; got {tuple(out.shape)}")
    dtype = torch.promote_types(out.dtype, torch.float32)  # bf16 outputs are scored in float32, float64 kept
    per_sample = (out.to(dtype) - eps.to(dtype)).square().reshape(x0.shape[0], -1).mean(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample


def palette_cond(x1: torch.Tensor, cond=None):
    """Palette's condition: the degraded image ``x1`` as the U-Net's concatenated "image", joined with any
    other condition (a tensor is concatenated after ``x1``; a dict gets ``x1`` in front of its "image")."""
    if cond is None:
        return x1
    if torch.is_tensor(cond):
        return torch.cat([x1, cond], dim=1)
    if isinstance(cond, dict):
        image = cond.get("image")
        return dict(cond, image=x1 if image is None else torch.cat([x1, image], dim=1))
    raise TypeError(f"cond must be None, a tensor or a dict; got {type(cond).__name__}")


class VPObjective:
    """``training_loop``'s objective for a VP diffusion prior: ``loss(model, x0, cond=None, …)``.

    The backbone is trained as ε-prediction and used as it is (``prepare`` wraps nothing), so the
    EMA model ``training_loop`` returns goes straight into ``ddpm`` / ``ddim`` / ``sdedit`` / ``odedit``.
    """

    kind = "vp-diffusion"

    def __init__(self, schedule: VPSchedule | None = None, *, prediction: str = "eps") -> None:
        self.schedule = VPSchedule() if schedule is None else schedule
        if not isinstance(self.schedule, VPSchedule):
            raise TypeError(f"schedule must be a diffusion.VPSchedule; got {type(self.schedule).__name__} "
                            "(a bridge schedule belongs to objective.BridgeObjective)")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {list(PREDICTIONS)}; got {prediction!r}")
        self.prediction = prediction

    def prepare(self, model):
        """ε-prediction: the backbone as it is; v-prediction: wrapped in :class:`VPrediction` (reads as ε)."""
        if self.prediction == "v" and not isinstance(model, VPrediction):
            return VPrediction(model, self.schedule)
        return model

    def loss(self, model, x0: torch.Tensor, cond=None, *, generator: torch.Generator,
             time_generator: torch.Generator) -> torch.Tensor:
        return vp_loss(model, x0, self.schedule, cond=cond, generator=generator, time_generator=time_generator,
                       prediction=self.prediction)

    def describe(self) -> dict:
        return {"kind": self.kind, "schedule": repr(self.schedule), "prediction": self.prediction}


class PaletteObjective(VPObjective):
    """Palette on the bridge's pairs: ``loss(model, x0, x1, cond=None, …)`` with ``palette_cond(x1, cond)``
    as the condition. The U-Net needs ``cond_channels`` = channels of ``x1`` (plus any other image condition)."""

    kind = "palette"

    def loss(self, model, x0: torch.Tensor, x1: torch.Tensor, cond=None, *, generator: torch.Generator,
             time_generator: torch.Generator) -> torch.Tensor:
        if x1.shape[0] != x0.shape[0] or x1.shape[2:] != x0.shape[2:]:
            raise ValueError(f"pair_fn must give x0 and x1 of one batch and size; got {tuple(x0.shape)} and "
                             f"{tuple(x1.shape)}")
        return vp_loss(model, x0, self.schedule, cond=palette_cond(x1, cond), generator=generator,
                       time_generator=time_generator, prediction=self.prediction)
