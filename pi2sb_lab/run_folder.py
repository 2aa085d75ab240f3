"""The run folder of a training run: open it (fresh, or resumed from its latest checkpoint), append the
log, write checkpoints.

Layout::

    run_dir/config.json                the whole run as one dict (settings, objective, extra, fingerprint)
    run_dir/log.jsonl                  a row every log_every steps: step, samples_seen, loss, lr, time
    run_dir/checkpoint-<step>.pt       the model, its EMA, the optimizer, the counters and losses

Only rank 0 writes; every rank reads, and waits at a barrier where rank 0 writes what the others read.
A resumed run drops the log rows a killed run wrote after its last checkpoint, so the log equals an
uninterrupted run's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from . import dist
from .atomic import write_atomic
from .checkpoint import check_fingerprint, checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints, \
    save_checkpoint
from .schedule import Schedule

# Settings that may change when a run is resumed without it being worth a warning.
RESUMABLE_CHANGES = {"total_steps", "total_samples", "resume", "progress", "log_every", "checkpoint_every",
                     "keep_checkpoints", "num_workers", "run_dir", "device", "callback", "callback_every",
                     "ignore_fingerprint"}


def describe(value) -> object:
    """A JSON-like stand-in for a setting that is an object (a model, a dataset, a function)."""
    if value is None or isinstance(value, str):
        return value
    for kind, plain in (((bool, np.bool_), bool), ((int, np.integer), int), ((float, np.floating), float)):
        if isinstance(value, kind):
            return plain(value)  # numpy scalars become plain numbers, so the config stays JSON
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
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


def describe_run(settings, **objects) -> dict:
    """The run's arguments as JSON-like values for config.json: ``objects`` (model, dataset, pair_fn, schedule,
    callback) described by :func:`describe`, beside the settings; in the order training_loop once took them."""
    run = {k: v for k, v in objects.items() if k != "callback"}
    for name, value in settings.as_dict().items():
        if name == "callback_every":
            run["callback"] = objects.get("callback")
        run[name] = value
    return {name: describe(value) for name, value in run.items()}


def rewrite_log(log_path: Path, last_step: int) -> None:
    """Drop log rows past ``last_step`` (written after the checkpoint a killed run resumes from)."""
    if not log_path.is_file():
        return
    rows = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    write_atomic(log_path, "".join(row + "\n" for row in rows))


def open_run(run_dir: Path | None, resume: bool, config: dict, device: torch.device, *, model, ema,
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
        changed = sorted(k for k in config if k not in RESUMABLE_CHANGES and ckpt.config.get(k) != config[k])
        if changed:
            dist.print0(f"warning: resuming {ckpt_file} with changed settings {changed}")
        dist.print0(f"resumed from {ckpt_file} at step {step} ({samples_seen} samples)")
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_file is None:
            write_atomic(run_dir / "config.json", json.dumps(config, indent=2) + "\n")
        rewrite_log(run_dir / "log.jsonl", step)
    dist.barrier()
    return step, samples_seen, losses, elapsed


def append_log(run_dir: Path, row: dict) -> None:
    """One row of log.jsonl (rank 0 only)."""
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def write_checkpoint(run_dir: Path, step: int, *, config: dict, keep: int | None, **state) -> None:
    """Rank 0 writes the checkpoint of ``step`` (``state``: counters, model, EMA, optimizer, losses, elapsed)
    and prunes all but the newest ``keep``; every rank waits until it is on disk."""
    if dist.is_main():
        save_checkpoint(checkpoint_path(run_dir, step), config=config, fingerprint=config["fingerprint"], step=step,
                        **state)
        prune_checkpoints(run_dir, keep)
    dist.barrier()
