"""The one schema of the ``cond`` argument, and its one parser, for every backbone (U-Net and 2D MLP).

``model(x_t, t, cond=None)`` takes the conditions of P-I2SB Table 3 (and I2SB's
optional Palette-style input) in one of three forms:

* ``None`` — unconditional;
* a Tensor — the "image" condition alone: the degraded input ``y`` (images
  ``(B, C_cond, H, W)``, 2D points ``(B, cond_dim)``), concatenated to ``x_t``;
* a dict with the optional keys ``"image"`` (that Tensor) and ``"degradation"``
  (float ``(B, degradation_dim)``: a degradation-parameter vector such as
  P-I2SB eq. 19's, embedded next to the time).

A backbone states what it was built for (``image_shape`` per sample, or None;
``degradation_dim``, 0 for none); every condition it was built for must be
given and no other, so a mis-wired experiment fails loudly instead of silently
ignoring an input. ``conditioning.Conditioning.build`` produces this format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

__all__ = ["COND_KEYS", "ParsedCond", "parse_cond"]

COND_KEYS = ("image", "degradation")


class ParsedCond(NamedTuple):
    """``cond`` split into its parts (each None when absent)."""

    image: torch.Tensor | None
    degradation: torch.Tensor | None


def parse_cond(cond: Any, *, batch: int, image_shape: tuple[int, ...] | None, degradation_dim: int,
               owner: str = "model") -> ParsedCond:
    """Split ``cond`` and check it against what ``owner`` was built for.

    ``image_shape``: the expected per-sample shape of the image condition (e.g.
    ``(C, H, W)`` or ``(cond_dim,)``), None when the model takes none;
    ``degradation_dim``: the expected vector length, 0 when it takes none.
    """
    if cond is None:
        image, degradation = None, None
    elif isinstance(cond, torch.Tensor):
        image, degradation = cond, None
    elif isinstance(cond, Mapping):
        unknown = set(cond) - set(COND_KEYS)
        if unknown:
            raise ValueError(f"unknown cond keys {sorted(unknown)}; valid keys: {list(COND_KEYS)}")
        image, degradation = cond.get("image"), cond.get("degradation")
    else:
        raise ValueError(f"cond must be None, a Tensor or a dict with keys {list(COND_KEYS)}; "
                         f"got {type(cond).__name__}")

    if image_shape is not None:
        expected = (batch, *image_shape)
        if image is None:
            raise ValueError(f"this {owner} needs an image condition of shape {expected} "
                             "(cond=Tensor or cond={'image': ...}); got none")
        if tuple(image.shape) != expected:
            raise ValueError(f"the image condition must have shape {expected}; got {tuple(image.shape)}")
    elif image is not None:
        raise ValueError(f"this {owner} was built without an image condition but got one of shape "
                         f"{tuple(image.shape)}")
    if degradation_dim:
        expected = (batch, degradation_dim)
        if degradation is None:
            raise ValueError(f"this {owner} needs cond={{'degradation': {expected}}} (a degradation-parameter "
                             "vector); got none")
        if tuple(degradation.shape) != expected:
            raise ValueError(f"cond['degradation'] must have shape {expected}; got {tuple(degradation.shape)}")
    elif degradation is not None:
        raise ValueError(f"this {owner} was built with degradation_dim=0 but got cond['degradation']")
    return ParsedCond(image, degradation)
