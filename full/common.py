"""What full/train.py and full/restore.py build from a :class:`FullConfig`: the bridge's recipe, the
helper networks (degradation estimator, VP prior), and the batched eq. 19 degradation of a uint8 batch
on the training device."""

from __future__ import annotations

import torch

from pi2sb_lab.data.images import to_float
from pi2sb_lab.degrade import degrade
from pi2sb_lab.nets import seeded
from pi2sb_lab.nets.estimator import DegradationEstimator
from pi2sb_lab.nets.unet import UNet
from pi2sb_lab.recipe import Recipe, make_recipe

from .config import FullConfig, degradation_config

IMAGE_CHANNELS = 3


def x_hat_as_is(x_noisy: torch.Tensor, sigma) -> torch.Tensor:
    """Noise-I2SB's decode when no prior is given: x̂ itself (eq. 18's Denoise not applied)."""
    return x_noisy


def recipe_of(cfg: FullConfig, denoiser=None) -> Recipe:
    """The bridge of ``cfg`` (``recipe.make_recipe``): ``family`` (I2SB's symmetric schedule on
    ``beta_min``/``beta_max``, or another family at its defaults), ``strategy`` (Noise with λ =
    ``noise_level`` and ``denoiser``, e.g. a ``diffusion.DDIMDenoiser`` on a trained prior, else
    :func:`x_hat_as_is`), ``conditioning``, and the U-Net ``net`` at ``image_size``."""
    return make_recipe(bridge=cfg.family, strategy=cfg.strategy, conditioning=cfg.conditioning, net=cfg.net,
                       channels=IMAGE_CHANNELS, beta_min=cfg.beta_min, beta_max=cfg.beta_max,
                       noise_level=cfg.noise_level, denoiser=denoiser or x_hat_as_is,
                       image_size=cfg.image_size, use_checkpoint=cfg.use_checkpoint)


def estimator_of(cfg: FullConfig) -> DegradationEstimator:
    """The degradation estimator (``model: estimator``): an LQ face → eq. 19's vector in [0, 1], the ``da``
    condition of Table 3 (c)–(f) when the true draw is unknown (real-world faces). From ``cfg.seed``."""
    return seeded(lambda: DegradationEstimator(IMAGE_CHANNELS, cfg.estimator_width), cfg.seed)


def prior_of(cfg: FullConfig) -> UNet:
    """The unconditional ε-network of a VP diffusion prior (``model: prior``) on the HQ faces, for
    Noise-I2SB's DDIM decode (P-I2SB eq. 18): the bridge's U-Net ``cfg.net`` without hashing or condition."""
    return seeded(lambda: UNet.from_config(cfg.net, in_channels=IMAGE_CHANNELS, out_channels=IMAGE_CHANNELS,
                                           image_size=cfg.image_size, use_checkpoint=cfg.use_checkpoint), cfg.seed)


def degrade_fn_of(cfg: FullConfig):
    """``degrade_fn(x, generator) -> (x, y, params vector)`` for ``pipeline.degrade_pair_fn``.

    ``x``: a uint8 batch (what the DataLoader workers decode), already on the training
    device; it becomes float [-1, 1] there, and eq. 19 runs batched on that device
    (blur, resize, noise, gray; the JPEG codec as ``degrade`` chooses). The draw comes
    from ``generator``, which the training loop seeds from (seed, rank, step): a
    resumed run sees the same pairs.
    """
    preset = degradation_config(cfg)  # the preset with the command line's eq. 19 overrides

    def degrade_fn(x: torch.Tensor, generator: torch.Generator):
        images = to_float(x) if x.dtype == torch.uint8 else x
        clean, y, params = degrade(images, preset, generator=generator)
        return clean, y, params.as_vector().to(y.device)

    return degrade_fn
