"""The bridge built once, from names: the one place every scale gets its network, its pairs and its restore.

A P-I2SB model is five choices (P-I2SB Alg. 1–2, Table 3):

* the **bridge** — I2SB's symmetric schedule on (β_min, β_max), or another family
  (``families.py``: DDBM VP/VE, GOUB) at its defaults;
* the **pseudo-hashing strategy** (eq. 11/18) — ``origin``, ``cat``, ``res``, ``noise``
  (Noise with its level λ and the denoiser its decode runs);
* the **conditioning** of Table 3 — ``none``, ``lq``, ``lq+da``;
* the **network preset** — a ``UNet`` config name, or ``"mlp"`` for 2D points;
* the **parameterization** — what the network's output means (``eps``, ``x0``, ``karras``).

:func:`make_recipe` turns those names into a :class:`Recipe`, and the recipe gives what a
run needs: :meth:`Recipe.network` (the seeded backbone inside its parameterization, with as
many input channels as the hashing and the conditions ask for), :meth:`Recipe.degrade_pair_fn`
/ :meth:`Recipe.pool_pair_fn` (the training pairs of ``pipeline``) and :meth:`Recipe.restore`
(``pipeline.restore`` with this bridge, hashing and condition). The studies of ``experiments/``
(and so ``toy/`` and the notebooks that train a bridge), the MNIST lab and ``full/`` all build their
bridge here, so one name means one model everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import torch
from torch import nn

from .bridge import Bridge
from .conditioning import Conditioning, get_conditioning
from .families import make_family
from .hashing import Denoiser, PseudoHash, get_strategy
from .nets import seeded
from .nets.mlp import MLP2D
from .nets.unet import UNet
from .parameterization import Parameterization, parameterize
from .pipeline import DegradeFn, Restoration, degrade_pair_fn, pool_pair_fn, restore
from .schedule import SymmetricSchedule

__all__ = ["MLP", "Recipe", "make_bridge", "make_recipe"]

MLP = "mlp"  # the network preset of 2D points (``nets.mlp.MLP2D``); any other name is a ``UNet`` config


def make_bridge(name: str = "i2sb", *, beta_min: float = 0.1, beta_max: float = 0.3) -> Bridge:
    """``"i2sb"``: I2SB's symmetric schedule on (``beta_min``, ``beta_max``); any other name: that bridge
    family (``families.make_family``) at its defaults."""
    if name == "i2sb":
        return SymmetricSchedule(beta_min, beta_max)
    return make_family(name)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One bridge model: ``bridge`` (a schedule or a family), ``strategy`` (the pseudo-hash),
    ``conditioning`` (Table 3), ``net`` (a ``UNet`` config name or :data:`MLP`) for data of
    ``channels`` channels (2 for 2D points), ``parameterization`` and the backbone's other
    ``net_options`` (``image_size``, ``use_checkpoint``; the MLP's ``hidden``, ``depth``, ``time_dim``).
    Build it with :func:`make_recipe`."""

    bridge: Bridge
    strategy: PseudoHash
    conditioning: Conditioning
    net: str
    channels: int = 1
    parameterization: str = "eps"
    net_options: Mapping = dataclasses.field(default_factory=dict)

    def backbone(self, seed: int = 0) -> nn.Module:
        """The bare network, initialised from ``seed`` alone (``nets.seeded``): as many input and output
        channels as the hashing needs (Cat doubles them), plus the condition's inputs."""
        width = self.strategy.channels(self.channels)
        cond = self.conditioning.unet_kwargs(self.channels)
        if self.net == MLP:  # net_options may set cond_dim itself (a raw pair set with its own condition)
            options = {"cond_dim": cond["cond_channels"], "degradation_dim": cond["degradation_dim"],
                       **self.net_options}
            return seeded(lambda: MLP2D(width, **options), seed)
        return seeded(lambda: UNet.from_config(self.net, in_channels=width, out_channels=width, **cond,
                                               **self.net_options), seed)

    def network(self, seed: int = 0, **kwargs) -> Parameterization:
        """:meth:`backbone` inside its parameterization (``kwargs``: e.g. Karras's data statistics)."""
        backbone = self.backbone(seed)
        return parameterize(self.parameterization, backbone, self.bridge, **kwargs)

    def degrade_pair_fn(self, degrade_fn: DegradeFn) -> Callable:
        """``pipeline.degrade_pair_fn``: clean batches degraded on the fly, hashed, conditioned."""
        return degrade_pair_fn(degrade_fn, self.strategy, self.conditioning)

    def pool_pair_fn(self, x: torch.Tensor, y: torch.Tensor, params: torch.Tensor | None = None) -> Callable:
        """``pipeline.pool_pair_fn``: a fixed pool of pairs, hashed afresh at every step."""
        return pool_pair_fn(x, y, self.strategy, self.conditioning, params)

    def restore(self, model, y: torch.Tensor, **kwargs) -> Restoration:
        """``pipeline.restore`` of ``y`` with ``model`` on this bridge, hashing and condition (P-I2SB Alg. 2);
        ``kwargs``: ``nfe``, ``grid``, ``degradation``, ``seed``, … as ``pipeline.restore`` takes them."""
        return restore(model, y, self.bridge, self.strategy, conditioning=self.conditioning, **kwargs)

    def with_denoiser(self, denoiser: Denoiser) -> "Recipe":
        """The same recipe with Noise-I2SB decoded by ``denoiser`` (the other strategies have none)."""
        if self.strategy.name != "noise":
            return self
        return dataclasses.replace(self, strategy=dataclasses.replace(self.strategy, denoiser=denoiser))


def make_recipe(*, bridge: str | Bridge = "i2sb", strategy: str | PseudoHash = "origin",
                conditioning: str | Conditioning = "none", net: str = "mnist-fast", channels: int = 1,
                parameterization: str = "eps", beta_min: float = 0.1, beta_max: float = 0.3,
                noise_level: float = 0.05, denoiser: Denoiser | None = None, **net_options) -> Recipe:
    """A :class:`Recipe` from names (objects are taken as they are).

    ``bridge``: see :func:`make_bridge` (``beta_min``/``beta_max`` for ``"i2sb"``);
    ``strategy``: a ``hashing.get_strategy`` name, Noise getting level ``noise_level`` and
    ``denoiser`` (for its decode; None until one is known); ``conditioning``: a
    ``conditioning.get_conditioning`` name; ``net``: a ``UNet`` config name or :data:`MLP`;
    ``net_options``: the backbone's other keywords.
    """
    if isinstance(bridge, str):
        bridge = make_bridge(bridge, beta_min=beta_min, beta_max=beta_max)
    if isinstance(strategy, str):
        hashing = get_strategy(strategy)  # raises ValueError listing the valid names
        strategy = get_strategy(strategy, level=noise_level, denoiser=denoiser) if hashing.name == "noise" else hashing
    if isinstance(conditioning, str):
        conditioning = get_conditioning(conditioning)
    return Recipe(bridge, strategy, conditioning, net, channels, parameterization, dict(net_options))
