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
from ``nets.estimator.DegradationEstimator``, a small CNN trained to predict the
vector from ``y`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .degrade import DEGRADATION_PARAM_DIM

__all__ = [
    "Conditioning",
    "CONDITIONINGS",
    "get_conditioning",
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
