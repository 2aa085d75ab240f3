"""AdamW for the training loop, in the fastest implementation this torch build runs.

torch has three AdamW implementations that round differently; the one chosen is recorded in
config.json, so a resumed run can tell whether it steps like the run it continues.
"""

from __future__ import annotations

import torch


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
