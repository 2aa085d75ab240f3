"""What a training run refuses while it runs: NaN/inf data before the first step, and the first NaN/inf
loss or gradient (:class:`NonFiniteLossError`). Bad settings are refused earlier, by
``train_settings.TrainSettings`` itself.

Kept apart from ``train.py`` so that the loop reads like the algorithm; every check here names the
setting, the value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .checkpoint import latest_checkpoint


class NonFiniteLossError(FloatingPointError):
    """A step's loss or gradient was NaN or infinite: training stopped, and no checkpoint or log row
    was written after the last finite step (the last good checkpoint is kept as it was)."""


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
