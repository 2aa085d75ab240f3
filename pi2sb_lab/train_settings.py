"""The settings of a training run as one record: :class:`TrainSettings`, each field checked once.

``training_loop(settings, model=…, dataset=…, pair_fn=…)`` takes everything that is a plain value
here (lengths, optimizer, EMA, bridge time sampling, seeding, the run folder); the objects (model,
data, pair function, objective, callback) are passed beside it. The studies' and ``full/``'s
configs hold these settings under the same names and hand them here to be checked
(:class:`StudyTraining`, ``FullConfig.train_settings``), so a setting is called the same everywhere
and checked in one place.

The learning rate of a step belongs here too (:meth:`TrainSettings.lr_at`): the loop sets it, the
callbacks read it from ``TrainState.lr``, nothing re-derives it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional, Tuple, Union

from ._checks import check_int, check_real
from .ema import check_ema

LR_DECAYS = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Every plain setting of :func:`pi2sb_lab.train.training_loop` (defaults: a short CPU run)."""

    total_steps: Optional[int] = None    # length of training in optimizer steps ...
    total_samples: Optional[int] = None  # ... or in samples (rounded up to whole steps); give exactly one
    batch_size: int = 64                 # global batch per optimizer step, split over ranks and accumulation rounds
    grad_accum: int = 1                  # micro-batches per optimizer step on each rank
    lr: float = 1e-4                     # AdamW learning rate
    lr_warmup_steps: int = 0             # linear learning-rate ramp over the first steps (0: none)
    lr_decay: str = "constant"           # after warm-up: "constant", or "cosine" down to lr_final · lr at the end
    lr_final: float = 0.1                # the cosine's final fraction of lr
    betas: Tuple[float, float] = (0.9, 0.999)  # AdamW betas
    weight_decay: float = 0.0            # AdamW decoupled weight decay (0: plain Adam)
    grad_clip: Optional[float] = None    # clip the global gradient norm to this (None: no clipping)
    ema_decay: float = 0.999             # EMA decay per step (I2SB uses 0.9999 on long runs; 0: a plain copy)
    ema_rampup: float = 0.0              # EMA half-life at most this × steps so far (EDM's 0.05; 0: no ramp-up)
    ot_ode: bool = False                 # bridge: train for the OT-ODE, X_t is the bridge mean (I2SB Prop. 3.4)
    train_grid: Optional[str] = None     # bridge: None, t ~ U(0, 1]; "uniform"/"quadratic": t from a stored grid
    train_grid_nfe: int = 1000           # bridge: number of grid steps when train_grid is set
    bf16: Optional[bool] = None          # bf16 autocast of the forward pass; None: on for CUDA, off on CPU
    seed: int = 0                        # seeds everything; runs are reproducible, never randomly seeded
    device: Optional[str] = None         # None: dist.init()'s choice (cuda:LOCAL_RANK or cpu)
    num_workers: int = 0                 # DataLoader worker processes per rank
    run_dir: Union[str, os.PathLike, None] = None  # config.json, log.jsonl, checkpoints; None writes nothing
    resume: bool = False                 # continue from the latest checkpoint in run_dir (fresh start if none)
    checkpoint_every: Optional[int] = None  # checkpoint every N steps (and always at the end when run_dir is set)
    keep_checkpoints: Optional[int] = 1  # how many recent checkpoints to keep (None: all)
    log_every: int = 100                 # steps between log.jsonl rows and progress-bar updates
    progress: Union[bool, str] = True    # tqdm progress bar on rank 0 (a string: its description)
    callback_every: Optional[int] = None  # steps between callback calls (and after the last step)
    ignore_fingerprint: bool = False     # resume from a checkpoint whose fingerprint differs (refused otherwise)

    def __post_init__(self) -> None:
        """One check per field, each naming the setting, the value and what is allowed."""
        if (self.total_steps is None) == (self.total_samples is None):
            raise ValueError("give exactly one of total_steps and total_samples")
        check_int("batch_size", self.batch_size, low=1)
        check_int("grad_accum", self.grad_accum, low=1)
        if self.total_samples is not None:
            check_int("total_samples", self.total_samples, low=1)
        else:
            check_int("total_steps", self.total_steps, low=1, why=" (optimizer steps to train)")
        # Finite, positive: lr = inf (or NaN) turns every weight into NaN at the first step.
        check_real("lr", self.lr, low=0, low_open=True)
        check_real("weight_decay", self.weight_decay, low=0)
        if self.grad_clip is not None:
            check_real("grad_clip", self.grad_clip, low=0, low_open=True)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1); got {self.betas!r}")
        for i, b in enumerate(self.betas):
            check_real(f"betas[{i}]", b, low=0, high=1, high_open=True)
        check_int("lr_warmup_steps", self.lr_warmup_steps, low=0)
        check_int("log_every", self.log_every, low=1)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, low=1, why=" or None (a checkpoint at the end only)")
        if type(self.seed) is not int or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0; got {self.seed!r}")
        if self.keep_checkpoints is not None:
            check_int("keep_checkpoints", self.keep_checkpoints, low=1, why=" or None (keep all)")
        if self.resume and self.run_dir is None:
            raise ValueError("resume=True needs a run_dir to resume from")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {list(LR_DECAYS)}; got {self.lr_decay!r}")
        check_real("lr_final", self.lr_final, low=0, high=1)
        if self.callback_every is not None and (type(self.callback_every) is not int or self.callback_every < 1):
            raise ValueError(f"callback_every must be an int >= 1 (or None: no callback); got {self.callback_every!r}")
        check_ema(self.ema_decay, self.ema_rampup)
        check_int("train_grid_nfe", self.train_grid_nfe, low=1)
        check_int("num_workers", self.num_workers, low=0)

    @property
    def steps(self) -> int:
        """The run's length in optimizer steps (``total_samples`` rounded up to whole global batches)."""
        if self.total_steps is not None:
            return int(self.total_steps)
        return math.ceil(int(self.total_samples) / int(self.batch_size))

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based): linear warm-up over ``lr_warmup_steps``,
        then constant, or cosine decay from ``lr`` to ``lr_final · lr`` at the last step."""
        lr, warmup = float(self.lr), self.lr_warmup_steps
        if warmup > 0 and step < warmup:
            return lr * (step + 1) / warmup
        if self.lr_decay == "cosine":
            progress = min(1.0, step / max(1, self.steps - 1))
            return lr * (self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
        return lr

    @classmethod
    def resolve(cls, settings: "TrainSettings | None", changes: dict) -> "TrainSettings":
        """``settings`` with ``changes`` (fields by name, e.g. ``training_loop``'s keywords), checked."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise TypeError(f"unknown training settings {unknown}; the settings are {list(FIELDS)}")
        if settings is None:
            return cls(**changes)
        return settings.replace(**changes) if changes else settings

    def replace(self, **changes) -> "TrainSettings":
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The fields by name, in order (values as given)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))


# The fields a study's config may hold under these names; each one *is* that training setting (the
# study's own `grid` and `nfe` are its sampler's, which is why TrainSettings says `train_grid`).
STUDY_FIELDS = ("total_steps", "batch_size", "lr", "lr_warmup_steps", "lr_decay", "lr_final", "ema_decay")
# Names a stored study config (a run folder's components.pt, results.json) may still use.
RENAMED = {"steps": "total_steps", "prior_steps": "total_steps"}


class StudyTraining:
    """What a study's config adds to be trained by the loop: :meth:`train_settings` turns its fields named in
    ``STUDY_FIELDS`` (``total_steps``, ``batch_size``, ``lr``, …) into the loop's one record, where each is
    checked; :meth:`from_dict` rebuilds a config stored under older names. The studies' configs
    (``MNISTConfig``, ``BaselineConfig``, ``EditConfig``, the 2D ``BridgeConfig``) inherit it, so the
    mapping is written once and a setting has one name and one check."""

    def train_settings(self, **runtime) -> TrainSettings:
        """The training loop's settings from this config's ``STUDY_FIELDS``; ``runtime``: what a run adds
        (seed, device, run_dir, …) or replaces."""
        own = {name: getattr(self, name) for name in STUDY_FIELDS if hasattr(self, name)}
        return TrainSettings(**{**own, **runtime})

    @classmethod
    def from_dict(cls, values: dict):
        """The config of ``values`` (``as_dict()``'s output), reading a field stored under an older name
        (``steps``, ``prior_steps``: now ``total_steps``) under its current one."""
        return cls(**{RENAMED.get(key, key): value for key, value in values.items()})
