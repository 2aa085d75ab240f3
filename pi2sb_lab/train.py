"""One training loop for every scale and every learned model: I2SB Alg. 1 / P-I2SB Alg. 1 and the helpers.

Each optimizer step, on every rank::

    x ~ dataset                                  (this rank's shard)
    pair = pair_fn(x, generator)                 (degradation + pseudo-hashing, P-I2SB eq. 11/19)
    loss = objective.loss(model, *pair)          (a bridge: t ~ U(0, 1], X_t ~ q(X_t | X0, X1),
                                                  ‖net(X_t, t, cond) − target‖², I2SB eq. 12)
    gradient step (averaged over ranks by DDP), then EMA update
    every callback_every steps: callback(state)  (sampling, evaluation, image grids)

The objective is the only part that knows what is learned: ``objective.BridgeObjective``
(the default, built from ``schedule``), a VP diffusion's, or a :class:`SupervisedObjective`
for the small auxiliary networks (digit classifier, degradation estimator, denoiser).

(This module is longer than ~350 lines on purpose: the loop and its named helpers — setting
checks, resume, seeding, accumulation, logging — read best beside each other, as in NVlabs/edm.)

The same function runs as ``python script.py`` and under ``torchrun``: ``dist.init()``
fills in a world of one. Counters count samples seen across all ranks, so they stay
right under DDP. Randomness is always seeded: the streams of step ``k`` on rank ``r``
are derived from ``(seed, r, k)`` (the global torch RNG, which dropout uses, is reseeded
too), so the step counter in a checkpoint *is* the RNG state and a resumed run repeats
exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from . import __version__
from . import dist
from .checkpoint import check_config, check_fingerprint, checkpoint_path, latest_checkpoint, load_checkpoint, \
    model_fingerprint, prune_checkpoints, save_checkpoint
from .objective import BridgeObjective
from .schedule import Schedule
from .train_checks import LR_DECAYS, NonFiniteLossError  # noqa: F401 (part of train's public names)
from .train_checks import check_finite_data, check_finite_steps, check_settings, grad_norm

PairFn = Callable[[torch.Tensor, torch.Generator], tuple]
# Settings that may change when a run is resumed without it being worth a warning.
_RESUMABLE_CHANGES = {"total_steps", "total_samples", "resume", "progress", "log_every", "checkpoint_every",
                      "keep_checkpoints", "num_workers", "run_dir", "device", "callback", "callback_every",
                      "ignore_fingerprint"}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`training_loop` returns.

    ``model``: the trained model (for a bridge, a bare backbone comes back wrapped in
    ``EpsParam``; its weights are trained in place). ``ema``: a separate copy holding the EMA weights, ready
    for ``sampler.sample``. ``losses``: the rank-averaged loss of every step since step 0
    (restored from the checkpoint when resumed). ``steps``, ``samples_seen``: global counters.
    """

    model: nn.Module
    ema: nn.Module
    losses: list[float]
    steps: int
    samples_seen: int
    run_dir: Path | None


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
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1); got {decay}")
        if not (isinstance(rampup, (int, float)) and math.isfinite(rampup) and rampup >= 0):
            raise ValueError(f"EMA rampup must be a finite number >= 0; got {rampup!r}")
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


class Objective(Protocol):
    """What ``training_loop`` minimises. ``prepare(model)`` may wrap the model (a bridge wraps a bare
    backbone as ε-parameterization); ``loss(model, *pair, generator=, time_generator=)`` is the scalar
    loss of one micro-batch, ``pair`` being what ``pair_fn`` returned; ``describe()`` goes to config.json."""

    def prepare(self, model: nn.Module) -> nn.Module: ...

    def loss(self, model: nn.Module, *pair, generator: torch.Generator,
             time_generator: torch.Generator) -> torch.Tensor: ...

    def describe(self) -> dict: ...


class SupervisedObjective:
    """A plain supervised loss for the auxiliary networks: ``loss_fn(model, *pair) -> scalar``.

    ``pair_fn`` returns whatever ``loss_fn`` needs after the model (inputs and targets;
    noise drawn from the generator it was given). ``name`` goes into config.json.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], name: str = "supervised") -> None:
        self.loss_fn, self.name = loss_fn, name

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def loss(self, model, *pair, generator, time_generator):
        return self.loss_fn(model, *pair)

    def describe(self) -> dict:
        return {"kind": "supervised", "name": self.name}


class _ObjectiveModule(nn.Module):
    """The model and its objective as one module, so DDP sees the whole forward pass (and the model keeps
    its own type and methods)."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, pair, generator, time_generator):
        return self.objective.loss(self.model, *pair, generator=generator, time_generator=time_generator)


@dataclass(frozen=True)
class TrainState:
    """What a ``callback`` sees: global counters, the model being trained and its EMA copy, the losses
    so far (rank-averaged), the run folder and this rank's device. Called on every rank: sample with
    ``ema`` and write files on rank 0 only (``dist.is_main()``)."""

    step: int
    samples_seen: int
    model: nn.Module
    ema: nn.Module
    losses: list[float]
    run_dir: Path | None
    device: torch.device


def _describe(value) -> object:
    """A JSON-like stand-in for a setting that is an object (a model, a dataset, a function)."""
    if value is None or isinstance(value, str):
        return value
    for kind, plain in (((bool, np.bool_), bool), ((int, np.integer), int), ((float, np.floating), float)):
        if isinstance(value, kind):
            return plain(value)  # numpy scalars become plain numbers, so the config stays JSON
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, nn.Module):
        return f"{type(value).__qualname__}({sum(p.numel() for p in value.parameters())} parameters)"
    if isinstance(value, torch.Tensor):
        return f"Tensor(shape={list(value.shape)}, dtype={value.dtype})"
    if isinstance(value, Dataset) and hasattr(value, "__len__"):
        return f"{type(value).__qualname__}(len={len(value)})"
    if isinstance(value, (Schedule, torch.device, Path)):
        return repr(value) if isinstance(value, Schedule) else str(value)
    name = getattr(value, "__qualname__", type(value).__qualname__)
    return f"{getattr(value, '__module__', type(value).__module__)}.{name}"


def _step_seeds(seed: int, rank: int, step: int) -> list[int]:
    """Three independent 63-bit seeds for step ``step`` on rank ``rank`` (NumPy's SeedSequence mixing)."""
    return [int(s) >> 1 for s in np.random.SeedSequence([seed, rank, step]).generate_state(3, dtype=np.uint64)]


def _rewrite_log(log_path: Path, last_step: int) -> None:
    """Drop log rows past ``last_step`` (written after the checkpoint a killed run resumes from)."""
    if not log_path.is_file():
        return
    rows = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    tmp = log_path.with_suffix(".tmp")
    tmp.write_text("".join(row + "\n" for row in rows))
    os.replace(tmp, log_path)


def _lr_at(step: int, *, lr: float, warmup: int, decay: str, final: float, total: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up, then constant or cosine
    decay from ``lr`` to ``final · lr`` at the last step."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if decay == "cosine":
        progress = min(1.0, step / max(1, total - 1))
        return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


OPTIMIZER_KINDS = ("fused", "foreach", "single-tensor")  # torch's AdamW implementations, fastest first


def _runs(kind: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether AdamW's ``kind`` implementation steps a tensor of ``dtype`` on ``device`` in this build
    (tried on one element: torch checks the fused kernel's device and dtype only at the first step)."""
    probe = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    probe.grad = torch.ones_like(probe)
    try:
        torch.optim.AdamW([probe], lr=1e-3, **{kind: True}).step()
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True


def build_optimizer(params: list[torch.Tensor], *, lr: float, betas: tuple[float, float], weight_decay: float,
                    device: torch.device) -> tuple[torch.optim.AdamW, str]:
    """AdamW in the fastest implementation this build runs for ``params`` on ``device``: (optimizer, kind).

    ``kind`` is one of ``OPTIMIZER_KINDS``: "fused" (one kernel per step over every tensor, on the CPU
    and CUDA since torch 2.4; several times faster than "foreach" for adm512 on a CPU, which makes a pass
    over the parameters per operation: docs/performance.md), else "foreach", else "single-tensor" (a
    Python loop over the tensors).
    The kinds round differently, so a run records its kind in config.json and a resumed run equals an
    uninterrupted one bit for bit when both chose the same kind (a change is warned about on resume).
    """
    dtypes = {p.dtype for p in params} or {torch.float32}
    kind = next((k for k in OPTIMIZER_KINDS[:2] if all(_runs(k, device, d) for d in dtypes)), "single-tensor")
    flags = {"fused": dict(fused=True), "foreach": dict(foreach=True), "single-tensor": dict(foreach=False)}[kind]
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, **flags), kind


def _build_objective(objective, schedule, ot_ode, grid, grid_nfe):
    if objective is None:
        if schedule is None:
            raise ValueError("give a schedule (to train a bridge) or an objective")
        return BridgeObjective(schedule, ot_ode=ot_ode, grid=grid, grid_nfe=grid_nfe)
    if schedule is not None or ot_ode or grid is not None:
        raise ValueError("schedule, ot_ode and grid set the default bridge objective; with objective= given, "
                         "put them into the objective instead")
    return objective


def _open_run(run_dir: Path | None, resume: bool, config: dict, device: torch.device, *, model, ema,
              optimizer, ignore_fingerprint: bool) -> tuple[int, int, list[float], float]:
    """Start fresh or continue from the latest checkpoint in ``run_dir``: (step, samples_seen, losses, elapsed).

    A checkpoint (or, before the first one, a config.json) whose fingerprint differs from this run's is
    refused with both fingerprints unless ``ignore_fingerprint``: another variant's weights of the same
    shapes would otherwise load silently.
    """
    if run_dir is None:
        return 0, 0, [], 0.0
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"run_dir {run_dir} exists and is not a folder")
    step, samples_seen, losses, elapsed = 0, 0, [], 0.0
    ckpt_file = latest_checkpoint(run_dir)
    if not resume and (ckpt_file is not None or (run_dir / "config.json").exists()):
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True to continue it, or a new run_dir")
    dist.barrier()  # every rank has looked at run_dir before rank 0 writes to it
    override = dict(override=ignore_fingerprint, override_name="ignore_fingerprint=True")
    if ckpt_file is None and (run_dir / "config.json").is_file():
        try:
            earlier = json.loads((run_dir / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{run_dir / 'config.json'} is not valid JSON ({err}); move the folder aside") from err
        if "fingerprint" in earlier:
            check_fingerprint(earlier["fingerprint"], config["fingerprint"], source=run_dir / "config.json", **override)
    if ckpt_file is not None:
        ckpt = load_checkpoint(ckpt_file, map_location=device)
        check_fingerprint(ckpt, config["fingerprint"], **override)
        ckpt.restore(model=model, ema=ema, optimizer=optimizer)
        step, samples_seen = ckpt.step, ckpt.samples_seen
        losses, elapsed = ckpt.parts["losses"].tolist(), float(ckpt.parts["elapsed"])
        changed = sorted(k for k in config if k not in _RESUMABLE_CHANGES and ckpt.config.get(k) != config[k])
        if changed:
            dist.print0(f"warning: resuming {ckpt_file} with changed settings {changed}")
        dist.print0(f"resumed from {ckpt_file} at step {step} ({samples_seen} samples)")
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_file is None:
            (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        _rewrite_log(run_dir / "log.jsonl", step)
    dist.barrier()
    return step, samples_seen, losses, elapsed


def _seed_step(seed: int, rank: int, step: int, gen_t: torch.Generator, gen: torch.Generator,
               device: torch.device) -> None:
    """Seed this step's random streams from (seed, rank, step) alone: the step counter is the RNG state."""
    seed_t, seed_data, seed_global = _step_seeds(seed, rank, step)
    gen_t.manual_seed(seed_t)
    gen.manual_seed(seed_data)
    torch.random.default_generator.manual_seed(seed_global)  # dropout and other global-RNG users
    if device.type == "cuda":
        torch.cuda.manual_seed(seed_global)


def _accumulate(forward, ddp, batches, pair_fn, grad_accum: int, device: torch.device, use_bf16: bool,
                gen: torch.Generator, gen_t: torch.Generator) -> tuple[torch.Tensor, int]:
    """Forward and backward over ``grad_accum`` micro-batches; (mean loss, micro-batch samples on this rank)."""
    step_loss, samples = torch.zeros((), device=device), 0
    for k in range(grad_accum):
        x = next(batches).to(device, non_blocking=True)
        pair = pair_fn(x, gen)                                            # e.g. hashed bridge endpoints
        last_round = k == grad_accum - 1
        sync = contextlib.nullcontext() if ddp is None or last_round else ddp.no_sync()
        with sync:  # gradients are averaged over ranks only on the last accumulation round
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = forward(pair, gen, gen_t)
            (loss / grad_accum).backward()
        step_loss += loss.detach().float() / grad_accum
        samples += x.shape[0]
    return step_loss, samples


def training_loop(
    *,
    model: nn.Module,                   # what is trained: for a bridge a Parameterization or a backbone (read as ε)
    dataset: Dataset | torch.Tensor,    # clean samples: a Tensor, or a map-style dataset of tensors or (tensor, label)
    pair_fn: PairFn,                    # (x, generator) -> the objective's inputs; a bridge's: (x0, x1, cond)
    schedule: Schedule | None = None,   # β(t) of a bridge: the default objective, BridgeObjective(schedule, …)
    objective: Objective | None = None,  # … or any other (a VP diffusion's, SupervisedObjective); then no schedule
    total_steps: int | None = None,     # length of training in optimizer steps ...
    total_samples: int | None = None,   # ... or in samples (rounded up to whole steps); give exactly one
    batch_size: int = 64,               # global batch per optimizer step, split over ranks and accumulation rounds
    grad_accum: int = 1,                # micro-batches per optimizer step on each rank
    lr: float = 1e-4,                   # AdamW learning rate
    lr_warmup_steps: int = 0,           # linear learning-rate ramp over the first steps (0: none)
    lr_decay: str = "constant",         # after warm-up: "constant", or "cosine" down to lr_final · lr at the end
    lr_final: float = 0.1,              # the cosine's final fraction of lr
    betas: tuple[float, float] = (0.9, 0.999),  # AdamW betas
    weight_decay: float = 0.0,          # AdamW decoupled weight decay (0: plain Adam)
    grad_clip: float | None = None,     # clip the global gradient norm to this (None: no clipping)
    ema_decay: float = 0.999,           # EMA decay per step (I2SB uses 0.9999 on long runs; 0: a plain copy)
    ema_rampup: float = 0.0,            # EMA half-life at most this × steps so far (EDM's 0.05; 0: no ramp-up)
    ot_ode: bool = False,               # bridge: train for the OT-ODE, X_t is the bridge mean (I2SB Prop. 3.4)
    grid: str | None = None,            # bridge: None, t ~ U(0, 1]; "uniform"/"quadratic": t from a stored grid
    grid_nfe: int = 1000,               # bridge: number of grid steps when grid is set
    bf16: bool | None = None,           # bf16 autocast of the forward pass; None: on for CUDA, off on CPU
    seed: int = 0,                      # seeds everything; runs are reproducible, never randomly seeded
    device: str | None = None,          # None: dist.init()'s choice (cuda:LOCAL_RANK or cpu)
    num_workers: int = 0,               # DataLoader worker processes per rank
    run_dir: str | os.PathLike | None = None,  # config.json, log.jsonl, checkpoints; None writes nothing
    resume: bool = False,               # continue from the latest checkpoint in run_dir (fresh start if none)
    checkpoint_every: int | None = None,  # checkpoint every N steps (and always at the end when run_dir is set)
    keep_checkpoints: int | None = 1,   # how many recent checkpoints to keep (None: all)
    log_every: int = 100,               # steps between log.jsonl rows and progress-bar updates
    progress: bool | str = True,        # tqdm progress bar on rank 0 (a string: its description)
    callback: Callable[[TrainState], None] | None = None,  # called on every rank every callback_every steps
    callback_every: int | None = None,  # … and after the last step
    config: dict | None = None,         # extra JSON-like settings of the caller, stored in config.json as "extra"
    fingerprint: dict | None = None,    # what this run is beyond model and objective (e.g. {"variant": "res"});
                                        # with theirs, stored in config.json and every checkpoint
    ignore_fingerprint: bool = False,   # resume from a checkpoint whose fingerprint differs (refused otherwise)
) -> TrainResult:
    """Train ``model`` on pairs from ``dataset`` (I2SB Alg. 1, P-I2SB Alg. 1); see the module docstring.

    Raises :class:`NonFiniteLossError` at the first NaN/inf loss or gradient (named with its step and
    the last finite loss; detected when the step's losses are gathered, at the next log row,
    checkpoint or callback, so the loop needs no host sync per step, and before anything is written).
    """
    arguments = dict(locals())  # the whole run as one dict (config.json), as NVlabs/edm does
    settings = {k: _describe(v) for k, v in arguments.items() if k not in ("config", "objective", "fingerprint")}
    total_steps = check_settings(total_steps=total_steps, total_samples=total_samples, batch_size=batch_size,
                                 seed=seed, keep_checkpoints=keep_checkpoints, resume=resume, run_dir=run_dir,
                                 lr_decay=lr_decay, lr_final=lr_final, callback=callback,
                                 callback_every=callback_every, grad_accum=grad_accum, lr=lr,
                                 weight_decay=weight_decay, grad_clip=grad_clip, betas=betas,
                                 lr_warmup_steps=lr_warmup_steps, log_every=log_every,
                                 checkpoint_every=checkpoint_every)
    lr, weight_decay, betas = float(lr), float(weight_decay), (float(betas[0]), float(betas[1]))  # not numpy scalars
    fingerprint = check_config(fingerprint, "fingerprint")
    objective = _build_objective(objective, schedule, ot_ode, grid, grid_nfe)
    check_finite_data(dataset)

    # Where this rank runs, and how the global batch splits over ranks and accumulation rounds.
    device = dist.init(device)
    world, rank = dist.world_size(), dist.rank()
    micro = batch_size // (world * grad_accum)
    if micro < 1 or micro * world * grad_accum != batch_size:
        raise ValueError(f"batch_size {batch_size} must be a multiple of world_size × grad_accum = "
                         f"{world} × {grad_accum}")
    use_bf16 = device.type == "cuda" if bf16 is None else bf16
    config = check_config(dict(settings, objective=objective.describe(), extra=check_config(config, "config"),
                               world_size=world, micro_batch=micro, version=__version__))

    # The model (a bridge's wrapped as a parameterization), its EMA copy, the optimizer.
    model = objective.prepare(model).to(device).train()
    # What this run is: resuming from another run's checkpoint is refused (see _open_run).
    config["fingerprint"] = check_config({"model": model_fingerprint(model), "objective": objective.describe(),
                                          **fingerprint}, "fingerprint")
    # DDP wraps model + objective, not the model, so the model keeps its own methods and type.
    # Wrapping broadcasts rank 0's weights: the EMA copy is made after it, identical on every rank.
    loss_module = _ObjectiveModule(model, objective)
    ddp = None if world == 1 else \
        DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    forward = loss_module if ddp is None else ddp
    ema = EMA(model, ema_decay, ema_rampup)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, config["optimizer"] = build_optimizer(trainable, lr=lr, betas=betas, weight_decay=weight_decay,
                                                     device=device)

    run_dir = None if run_dir is None else Path(run_dir)
    step, samples_seen, losses, elapsed_before = _open_run(run_dir, resume, config, device, model=model, ema=ema,
                                                           optimizer=optimizer, ignore_fingerprint=ignore_fingerprint)

    # Data: this rank's shard, continuing at the micro-batch the checkpoint reached.
    if isinstance(dataset, torch.Tensor):
        dataset = TensorDataset(dataset)
    loader = dist.make_loader(dataset, micro, shuffle=True, seed=seed, drop_last=True, num_workers=num_workers)
    if len(loader) == 0:
        raise ValueError(f"dataset of {len(dataset)} samples gives no full micro-batch of {micro} per rank")
    batches = dist.batches_from(loader, step * grad_accum)

    gen_t = torch.Generator()                  # the objective's training times (drawn on the CPU)
    gen = torch.Generator(device=device)       # pair_fn's degradations and the bridge noise

    pending: list[torch.Tensor] = []           # per step (loss, gradient norm), not yet averaged over ranks
    last_logged, last_saved = step - step % log_every, step  # losses[i] is the loss of step i + 1
    last_called = step
    start_time = time.time()
    desc = progress if isinstance(progress, str) else None
    bar = tqdm(total=total_steps, initial=step, unit="step", desc=desc, disable=not (progress and dist.is_main()))

    def flush_losses() -> None:
        # Called before every log row, checkpoint and callback: a NaN/inf step stops the run here, before
        # anything is written. Rank-averaged, so every rank sees the same values and stops together.
        if pending:
            values = dist.all_reduce_mean(torch.stack(pending)).tolist()
            pending.clear()
            check_finite_steps(values, losses, run_dir, lr)
            losses.extend(v[0] for v in values)

    def write_checkpoint() -> None:
        if dist.is_main():
            save_checkpoint(checkpoint_path(run_dir, step), config=config, fingerprint=config["fingerprint"],
                            step=step, samples_seen=samples_seen,
                            model=model, ema=ema, optimizer=optimizer, elapsed=elapsed_before + time.time() - start_time,
                            losses=torch.tensor(losses, dtype=torch.float64))
            prune_checkpoints(run_dir, keep_checkpoints)
        dist.barrier()

    def call_back() -> None:
        flush_losses()
        callback(TrainState(step, samples_seen, model, ema.ema_model, losses, run_dir, device))

    # Each step reseeds the global RNG (dropout uses it); fork it so the caller's stream is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            while step < total_steps:
                _seed_step(seed, rank, step, gen_t, gen, device)
                optimizer.zero_grad(set_to_none=True)
                step_loss, micro_samples = _accumulate(forward, ddp, batches, pair_fn, grad_accum, device, use_bf16,
                                                       gen, gen_t)
                samples_seen += micro_samples * world
                step_grad_norm = grad_norm(trainable, grad_clip)  # before clipping (to grad_clip, when set)
                lr_now = _lr_at(step, lr=lr, warmup=lr_warmup_steps, decay=lr_decay, final=lr_final, total=total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                optimizer.step()
                ema.update(model)  # on every rank, from the same synchronized weights
                step += 1
                pending.append(torch.stack([step_loss, step_grad_norm.to(step_loss)]))
                bar.update(1)

                if step % log_every == 0 or step == total_steps:
                    flush_losses()
                    mean_loss = sum(losses[last_logged:]) / max(1, len(losses) - last_logged)
                    last_logged = len(losses)
                    bar.set_postfix(loss=f"{mean_loss:.4g}", samples=samples_seen)
                    if run_dir is not None and dist.is_main():
                        row = dict(step=step, samples_seen=samples_seen, loss=mean_loss, lr=lr_now,
                                   time=round(elapsed_before + time.time() - start_time, 3))
                        with open(run_dir / "log.jsonl", "a") as f:
                            f.write(json.dumps(row) + "\n")
                if run_dir is not None and checkpoint_every and step % checkpoint_every == 0:
                    flush_losses()
                    write_checkpoint()
                    last_saved = step
                if callback is not None and step % callback_every == 0:
                    call_back()
                    last_called = step

            flush_losses()
            if run_dir is not None and (last_saved != step or latest_checkpoint(run_dir) is None):
                write_checkpoint()
            if callback is not None and last_called != step:
                call_back()
        finally:
            bar.close()
    return TrainResult(model=model, ema=ema.ema_model, losses=losses, steps=step, samples_seen=samples_seen,
                       run_dir=run_dir)


def fit_supervised(model: nn.Module, n: int, pair_fn: PairFn, loss_fn: Callable[..., torch.Tensor], *, steps: int,
                   batch_size: int, lr: float, seed: int, device: str | torch.device, name: str,
                   progress: bool = True) -> nn.Module:
    """A small supervised fit through :func:`training_loop` (the auxiliary networks: digit classifier,
    degradation estimator, Noise's denoiser): shuffled batches of row indices ``0 … n−1``,
    ``pair_fn(rows, generator)`` → ``loss_fn(model, *pair)``, Adam, no EMA. Returns ``model`` in eval mode."""
    result = training_loop(model=model, dataset=TensorDataset(torch.arange(n)), pair_fn=pair_fn,
                           objective=SupervisedObjective(loss_fn, name), total_steps=steps, batch_size=batch_size,
                           lr=lr, ema_decay=0.0, seed=seed, device=str(device), log_every=10**9,
                           progress=name if progress else False)
    return result.model.eval()
