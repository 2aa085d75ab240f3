"""Standard VP diffusion (docs/design.md, "Baselines"): the baselines I2SB and ODEdit compare against,
and Noise-I2SB's DDIM decoder.

``schedule``: :class:`VPSchedule` (continuous-time DDPM, linear β, closed forms);
``objective``: :class:`VPObjective` (unconditional prior) and :class:`PaletteObjective`
(Palette on the bridge's pairs) for ``train.training_loop``;
``sampling``: :func:`ddpm`, :func:`ddim` (η), :func:`ddim_invert` — the I2SB sampler's walk
(``walk.py``) with VP steps, returning its ``SampleResult``;
``editing``: :func:`sdedit`, :func:`odedit` (ODEdit Alg. 1), :class:`DDIMDenoiser`
(a ``hashing.Denoiser`` for Noise-I2SB, P-I2SB eq. 18).
"""

from .editing import ODEDIT_PAPER, DDIMDenoiser, default_langevin_at, langevin, odedit, sdedit
from .objective import PREDICTIONS, PaletteObjective, VPObjective, VPrediction, palette_cond, vp_loss
from .sampling import SampleResult, StepPosterior, ddim, ddim_invert, ddim_step, ddpm, ddpm_posterior, predict, \
    prior_noise, walk_times
from .schedule import VPSchedule

__all__ = [
    "VPSchedule", "VPObjective", "VPrediction", "PREDICTIONS", "PaletteObjective", "palette_cond", "vp_loss", "SampleResult", "StepPosterior",
    "ddpm_posterior", "ddim_step", "predict", "prior_noise", "walk_times", "ddpm", "ddim", "ddim_invert", "sdedit",
    "langevin", "default_langevin_at", "odedit", "DDIMDenoiser", "ODEDIT_PAPER",
]
