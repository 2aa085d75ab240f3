"""What a training run refuses, and when: bad settings before it starts, NaN/inf data before the first
step, and the first NaN/inf loss or gradient while it runs (:class:`NonFiniteLossError`).

Kept apart from ``train.py`` so that the loop reads like the algorithm; every check here names the
setting, the value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from ._checks import check_int, check_real
from .checkpoint import latest_checkpoint

LR_DECAYS = ("constant", "cosine")


class NonFiniteLossError(FloatingPointError):
    """A step's loss or gradient was NaN or infinite: training stopped, and no checkpoint or log row
    was written after the last finite step (the last good checkpoint is kept as it was)."""


def check_settings(*, total_steps, total_samples, batch_size, seed, keep_checkpoints, resume, run_dir, lr_decay,
                   lr_final, callback, callback_every, grad_accum, lr, weight_decay, grad_clip, betas,
                   lr_warmup_steps, log_every, checkpoint_every) -> int:
    """Check the settings that need no model or data; return the run's length in optimizer steps."""
    if (total_steps is None) == (total_samples is None):
        raise ValueError("give exactly one of total_steps and total_samples")
    batch_size = check_int("batch_size", batch_size, low=1)
    check_int("grad_accum", grad_accum, low=1)
    if total_steps is None:
        total_steps = math.ceil(check_int("total_samples", total_samples, low=1) / batch_size)
    total_steps = check_int("total_steps", total_steps, low=1, why=" (optimizer steps to train)")
    # Finite, positive: lr = inf (or NaN) turns every weight into NaN at the first step.
    check_real("lr", lr, low=0, low_open=True)
    check_real("weight_decay", weight_decay, low=0)
    if grad_clip is not None:
        check_real("grad_clip", grad_clip, low=0, low_open=True)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1); got {betas!r}")
    for i, b in enumerate(betas):
        check_real(f"betas[{i}]", b, low=0, high=1, high_open=True)
    check_int("lr_warmup_steps", lr_warmup_steps, low=0)
    check_int("log_every", log_every, low=1)
    if checkpoint_every is not None:
        check_int("checkpoint_every", checkpoint_every, low=1, why=" or None (a checkpoint at the end only)")
    if type(seed) is not int or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    if keep_checkpoints is not None and keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints must be None (keep all) or >= 1; got {keep_checkpoints}")
    if resume and run_dir is None:
        raise ValueError("resume=True needs a run_dir to resume from")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {list(LR_DECAYS)}; got {lr_decay!r}")
    if not 0 <= lr_final <= 1:  # NaN fails too
        raise ValueError(f"lr_final must lie in [0, 1] (a fraction of lr); got {lr_final}")
    if callback is not None and (type(callback_every) is not int or callback_every < 1):
        raise ValueError(f"callback_every must be an int >= 1 when a callback is given; got {callback_every!r}")
    return total_steps


def grad_norm(params: list[torch.Tensor], clip: float | None) -> torch.Tensor:
    """The global gradient norm of ``params`` (a tensor, no host sync), before clipping their gradients to
    ``clip`` if set."""
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    # what torch>=2.6's get_total_norm computes (pyproject allows torch 2.4), one fused norm per list
    return torch.linalg.vector_norm(torch.stack([n.float() for n in torch._foreach_norm(grads)]))


def check_finite_steps(values: list[list[float]], losses: list[float], run_dir: Path | None, lr: float) -> None:
    """Raise :class:`NonFiniteLossError` at the first (loss, gradient norm) pair in ``values`` that is not
    finite; ``losses`` holds the (finite) losses of the steps before ``values``."""
    for i, (loss, grad_norm) in enumerate(values):
        if math.isfinite(loss) and math.isfinite(grad_norm):
            continue
        step = len(losses) + i + 1
        finite = losses + [v[0] for v in values[:i]]
        last = f"{finite[-1]:.6g} at step {step - 1}" if finite else "none (the first step already failed)"
        kept = latest_checkpoint(run_dir) if run_dir is not None else None
        raise NonFiniteLossError(
            f"training stopped at step {step}: the loss is {loss} and the gradient norm {grad_norm} "
            f"(not finite). Last finite loss: {last}. Nothing was written after it; "
            + (f"the last good checkpoint, {kept}, is kept. " if kept else "no checkpoint was written. ")
            + f"Look for NaN/inf in the data or pairs, a learning rate too large (lr={lr:g}), or set grad_clip.")


def check_finite_data(dataset) -> None:
    """A tensor dataset with NaN/inf samples is refused before training (they would make every loss NaN)."""
    tensors = [dataset] if isinstance(dataset, torch.Tensor) else \
        list(dataset.tensors) if isinstance(dataset, TensorDataset) else []
    for tensor in tensors:
        if tensor.is_floating_point() and tensor.numel():
            bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)
            if bool(bad.any()):
                raise ValueError(f"dataset holds NaN/inf in {int(bad.sum())} of {len(bad)} samples "
                                 f"(the first at index {int(bad.nonzero()[0])})")
