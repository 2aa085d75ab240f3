"""The exponential moving average of a model's weights (the EMA that I2SB samples with).

Every rank averages its own copy from the same DDP-synchronized weights, so all ranks hold the same
average and any rank may sample from it (the lucidrains #180 / diffusers #1895 complaint).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._checks import check_real


def check_ema(decay, rampup) -> None:
    """``decay`` in [0, 1) and ``rampup`` a finite number >= 0 (the settings :class:`EMA` takes), named as
    the training settings name them."""
    check_real("ema_decay", decay, low=0, high=1, high_open=True)
    check_real("ema_rampup", rampup, low=0)


class EMA:
    """Exponential moving average of a model's weights: θ̄ ← d·θ̄ + (1 − d)·θ after each optimizer step.

    Holds ``ema_model``, a frozen deep copy of the model in eval mode whose parameters
    are the average (buffers are copied as they are). Every rank updates its own copy
    from identical, DDP-synchronized weights, so all ranks hold the same average.
    ``copy_to(model)`` loads the average into another model of the same architecture.

    ``rampup`` (EDM's ``ema_rampup_ratio``, Karras et al. 2022): the average's half-life
    is at most ``rampup`` × the updates so far, so a short run's average follows the
    model instead of staying at the initial weights (with ``decay`` = 0.9999 and no
    ramp-up, 1,000 updates leave 90 % of the initial network in it). 0: off.
    """

    def __init__(self, model: nn.Module, decay: float, rampup: float = 0.0) -> None:
        check_ema(decay, rampup)
        self.decay, self.rampup = float(decay), float(rampup)
        self.num_updates = 0
        self.ema_model = copy.deepcopy(model).eval().requires_grad_(False)
        self._source, self._pairs = None, None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if model is not self._source:
            # Walking the module tree costs more than the update itself for a small net: list the
            # tensor pairs once per source model.
            self._source = model
            self._pairs = (list(self.ema_model.parameters()), [p.detach() for p in model.parameters()],
                           list(self.ema_model.buffers()), list(model.buffers()))
            if len(self._pairs[0]) != len(self._pairs[1]) or len(self._pairs[2]) != len(self._pairs[3]):
                raise ValueError("EMA.update got a model of another architecture than the averaged one")
        avg, params, avg_bufs, bufs = self._pairs
        decay = self.current_decay()
        if all(a.dtype == p.dtype for a, p in zip(avg, params)):
            torch._foreach_lerp_(avg, params, 1.0 - decay)  # avg + (1 − d)(p − avg), one fused call
        else:
            for a, p in zip(avg, params):
                a.lerp_(p.to(a.dtype), 1.0 - decay)
        for avg_buf, buf in zip(avg_bufs, bufs):
            avg_buf.copy_(buf)
        self.num_updates += 1

    def current_decay(self) -> float:
        """The decay of the next update: ``decay``, or less while the ramp-up's half-life is shorter."""
        if not self.rampup:
            return self.decay
        half_life = self.rampup * (self.num_updates + 1)  # in updates
        return min(self.decay, 0.5 ** (1.0 / half_life))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "model": self.ema_model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        self.ema_model.load_state_dict(state["model"])

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.ema_model.state_dict())
