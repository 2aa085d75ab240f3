"""One training loop for every scale and every learned model: I2SB Alg. 1 / P-I2SB Alg. 1.

Each optimizer step, on every rank::

    x ~ dataset                                  (this rank's shard)
    pair = pair_fn(x, generator)                 (degradation + pseudo-hashing, P-I2SB eq. 11/19)
    loss = objective.loss(model, *pair)          (a bridge: t ~ U(0, 1], X_t ~ q(X_t | X0, X1),
                                                  ‖net(X_t, t, cond) − target‖², I2SB eq. 12)
    gradient step at settings.lr_at(step) (averaged over ranks by DDP), then EMA update
    every callback_every steps: callback(state)  (sampling, evaluation, image grids)

The objective is the only part that knows what is learned: ``objective.BridgeObjective``
(the default, built from ``schedule``), a VP diffusion's, or a ``supervised.SupervisedObjective``
for the small auxiliary networks (digit classifier, degradation estimator, denoiser). The plain
settings are one record, ``train_settings.TrainSettings``; the state and result types and the
per-step seeding (``train_state``), the EMA (``ema``), the run folder (``run_folder``) and the
setting checks (``train_checks``) have modules of their own, so this one holds the loop alone, as
NVlabs/edm's ``training_loop.py`` does.

The same function runs as ``python script.py`` and under ``torchrun``: ``dist.init()``
fills in a world of one. Counters count samples seen across all ranks, so they stay
right under DDP. Randomness is always seeded: the streams of step ``k`` on rank ``r``
are derived from ``(seed, r, k)`` (the global torch RNG, which dropout uses, is reseeded
too), so the step counter in a checkpoint *is* the RNG state and a resumed run repeats
exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from . import __version__
from . import dist
from .checkpoint import check_config, latest_checkpoint, model_fingerprint
from .ema import EMA
from .objective import BridgeObjective
from .optimizer import OPTIMIZER_KINDS, build_optimizer  # noqa: F401 (re-exported: train's public names)
from .run_folder import append_log, describe_run, open_run, write_checkpoint
from .schedule import Schedule
from .supervised import SupervisedObjective, fit_supervised  # noqa: F401 (re-exported)
from .train_checks import NonFiniteLossError  # noqa: F401 (re-exported)
from .train_checks import check_finite_data, check_finite_steps, grad_norm
from .train_settings import LR_DECAYS  # noqa: F401 (re-exported)
from .train_settings import TrainSettings
from .train_state import ObjectiveModule, TrainResult, TrainState, seed_step
from .train_state import Objective  # noqa: F401 (re-exported: train's public names)

# EMA, SupervisedObjective, fit_supervised, build_optimizer, OPTIMIZER_KINDS, LR_DECAYS, NonFiniteLossError,
# TrainState, TrainResult and Objective live in
# their own modules and are imported above, so ``from pi2sb_lab.train import X`` keeps working for each (no
# __all__: the API pages list each name once, under the module that defines it).

PairFn = Callable[[torch.Tensor, torch.Generator], tuple]


def _build_objective(objective, schedule, ot_ode, grid, grid_nfe):
    if objective is None:
        if schedule is None:
            raise ValueError("give a schedule (to train a bridge) or an objective")
        return BridgeObjective(schedule, ot_ode=ot_ode, grid=grid, grid_nfe=grid_nfe)
    if schedule is not None or ot_ode or grid is not None:
        raise ValueError("schedule, ot_ode and train_grid set the default bridge objective; with objective= given, "
                         "put them into the objective instead")
    return objective


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
    settings: TrainSettings | None = None,  # the plain settings (lengths, optimizer, EMA, seed, run folder) …
    /, *,
    model: nn.Module,                   # what is trained: for a bridge a Parameterization or a backbone (read as ε)
    dataset: Dataset | torch.Tensor,    # clean samples: a Tensor, or a map-style dataset of tensors or (tensor, label)
    pair_fn: PairFn,                    # (x, generator) -> the objective's inputs; a bridge's: (x0, x1, cond)
    schedule: Schedule | None = None,   # β(t) of a bridge: the default objective, BridgeObjective(schedule, …)
    objective: Objective | None = None,  # … or any other (a VP diffusion's, SupervisedObjective); then no schedule
    callback: Callable[[TrainState], None] | None = None,  # called on every rank every callback_every steps
    config: dict | None = None,         # extra JSON-like settings of the caller, stored in config.json as "extra"
    fingerprint: dict | None = None,    # what this run is beyond model and objective (e.g. {"variant": "res"});
                                        # with theirs, stored in config.json and every checkpoint
    **changes,                          # … or TrainSettings fields by name (replacing those of ``settings``)
) -> TrainResult:
    """Train ``model`` on pairs from ``dataset`` (I2SB Alg. 1, P-I2SB Alg. 1); see the module docstring.

    ``training_loop(TrainSettings(total_steps=…), model=…)`` and ``training_loop(model=…, total_steps=…)``
    are the same run. Raises :class:`NonFiniteLossError` at the first NaN/inf loss or gradient (named with
    its step and the last finite loss; detected when the step's losses are gathered, at the next log row,
    checkpoint or callback, so the loop needs no host sync per step, and before anything is written).
    """
    s = TrainSettings.resolve(settings, changes)
    if callback is not None and s.callback_every is None:
        raise ValueError("callback_every must be an int >= 1 when a callback is given; got None")
    total_steps, lr = s.steps, float(s.lr)
    fingerprint = check_config(fingerprint, "fingerprint")
    objective = _build_objective(objective, schedule, s.ot_ode, s.train_grid, s.train_grid_nfe)
    check_finite_data(dataset)

    # Where this rank runs, and how the global batch splits over ranks and accumulation rounds.
    device = dist.init(s.device)
    world, rank = dist.world_size(), dist.rank()
    micro = s.batch_size // (world * s.grad_accum)
    if micro < 1 or micro * world * s.grad_accum != s.batch_size:
        raise ValueError(f"batch_size {s.batch_size} must be a multiple of world_size × grad_accum = "
                         f"{world} × {s.grad_accum}")
    use_bf16 = device.type == "cuda" if s.bf16 is None else s.bf16
    # The whole run as one dict (config.json), as NVlabs/edm does.
    config = check_config(dict(describe_run(s, model=model, dataset=dataset, pair_fn=pair_fn, schedule=schedule,
                                            callback=callback),
                               objective=objective.describe(), extra=check_config(config, "config"),
                               world_size=world, micro_batch=micro, version=__version__))

    # The model (a bridge's wrapped as a parameterization), its EMA copy, the optimizer.
    model = objective.prepare(model).to(device).train()
    # What this run is: resuming from another run's checkpoint is refused (see run_folder.open_run).
    config["fingerprint"] = check_config({"model": model_fingerprint(model), "objective": objective.describe(),
                                          **fingerprint}, "fingerprint")
    # DDP wraps model + objective, not the model, so the model keeps its own methods and type.
    # Wrapping broadcasts rank 0's weights: the EMA copy is made after it, identical on every rank.
    loss_module = ObjectiveModule(model, objective)
    ddp = None if world == 1 else \
        DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    forward = loss_module if ddp is None else ddp
    ema = EMA(model, s.ema_decay, s.ema_rampup)
    trainable = [p for p in model.parameters() if p.requires_grad]
    betas = (float(s.betas[0]), float(s.betas[1]))  # not numpy scalars
    optimizer, config["optimizer"] = build_optimizer(trainable, lr=lr, betas=betas,
                                                     weight_decay=float(s.weight_decay), device=device)

    run_dir = None if s.run_dir is None else Path(s.run_dir)
    step, samples_seen, losses, elapsed_before = open_run(run_dir, s.resume, config, device, model=model, ema=ema,
                                                          optimizer=optimizer, ignore_fingerprint=s.ignore_fingerprint)

    # Data: this rank's shard, continuing at the micro-batch the checkpoint reached.
    if isinstance(dataset, torch.Tensor):
        dataset = TensorDataset(dataset)
    loader = dist.make_loader(dataset, micro, shuffle=True, seed=s.seed, drop_last=True, num_workers=s.num_workers)
    if len(loader) == 0:
        raise ValueError(f"dataset of {len(dataset)} samples gives no full micro-batch of {micro} per rank")
    batches = dist.batches_from(loader, step * s.grad_accum)

    gen_t = torch.Generator()                  # the objective's training times (drawn on the CPU)
    gen = torch.Generator(device=device)       # pair_fn's degradations and the bridge noise

    pending: list[torch.Tensor] = []           # per step (loss, gradient norm), not yet averaged over ranks
    last_logged, last_saved = step - step % s.log_every, step  # losses[i] is the loss of step i + 1
    last_called = step
    lr_now = s.lr_at(max(0, step - 1))
    start_time = time.time()
    desc = s.progress if isinstance(s.progress, str) else None
    bar = tqdm(total=total_steps, initial=step, unit="step", desc=desc, disable=not (s.progress and dist.is_main()))

    def flush_losses() -> None:
        # Called before every log row, checkpoint and callback: a NaN/inf step stops the run here, before
        # anything is written. Rank-averaged, so every rank sees the same values and stops together.
        if pending:
            values = dist.all_reduce_mean(torch.stack(pending)).tolist()
            pending.clear()
            check_finite_steps(values, losses, run_dir, lr)
            losses.extend(v[0] for v in values)

    def save() -> None:
        write_checkpoint(run_dir, step, config=config, keep=s.keep_checkpoints, samples_seen=samples_seen,
                         model=model, ema=ema, optimizer=optimizer, elapsed=elapsed_before + time.time() - start_time,
                         losses=torch.tensor(losses, dtype=torch.float64))

    def call_back() -> None:
        flush_losses()
        callback(TrainState(step, samples_seen, model, ema.ema_model, losses, run_dir, device, lr_now))

    # Each step reseeds the global RNG (dropout uses it); fork it so the caller's stream is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            while step < total_steps:
                seed_step(s.seed, rank, step, gen_t, gen, device)
                optimizer.zero_grad(set_to_none=True)
                step_loss, micro_samples = _accumulate(forward, ddp, batches, pair_fn, s.grad_accum, device, use_bf16,
                                                       gen, gen_t)
                samples_seen += micro_samples * world
                step_grad_norm = grad_norm(trainable, s.grad_clip)  # before clipping (to grad_clip, when set)
                lr_now = s.lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                optimizer.step()
                ema.update(model)  # on every rank, from the same synchronized weights
                step += 1
                pending.append(torch.stack([step_loss, step_grad_norm.to(step_loss)]))
                bar.update(1)

                if step % s.log_every == 0 or step == total_steps:
                    flush_losses()
                    mean_loss = sum(losses[last_logged:]) / max(1, len(losses) - last_logged)
                    last_logged = len(losses)
                    bar.set_postfix(loss=f"{mean_loss:.4g}", samples=samples_seen)
                    if run_dir is not None and dist.is_main():
                        append_log(run_dir, dict(step=step, samples_seen=samples_seen, loss=mean_loss, lr=lr_now,
                                                 time=round(elapsed_before + time.time() - start_time, 3)))
                if run_dir is not None and s.checkpoint_every and step % s.checkpoint_every == 0:
                    flush_losses()
                    save()
                    last_saved = step
                if callback is not None and step % s.callback_every == 0:
                    call_back()
                    last_called = step

            flush_losses()
            if run_dir is not None and (last_saved != step or latest_checkpoint(run_dir) is None):
                save()
            if callback is not None and last_called != step:
                call_back()
        finally:
            bar.close()
    return TrainResult(model=model, ema=ema.ema_model, losses=losses, steps=step, samples_seen=samples_seen,
                       run_dir=run_dir)
