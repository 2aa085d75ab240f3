"""torchrun helpers: one code path for ``python script.py`` and ``torchrun --nproc_per_node N script.py``.

``init()`` reads the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group by
env:// rendezvous; nothing here picks a port or launches processes (the NVlabs/I2SB
complaint). Outside torchrun it fills in a world of one, so every helper below
works unchanged: ``rank() == 0``, ``barrier()`` returns at once,
``all_reduce_mean(x)`` is ``x``, ``all_gather_object(o)`` is ``[o]``.

Backend: nccl when the device is a GPU, gloo on CPU. A rank that raises ends the run at once
(torchrun stops the others); a rank that hangs instead leaves the others waiting in a collective
until the process group's timeout: ``PI2SB_COLLECTIVE_TIMEOUT_S`` (seconds) sets it for every
rank, torch's default (10 minutes) otherwise.
"""

from __future__ import annotations

import builtins
import datetime
import math
import os
from typing import Iterator

import torch
import torch.distributed as torch_dist
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, TensorDataset

_device: torch.device | None = None

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_VAR = "PI2SB_COLLECTIVE_TIMEOUT_S"


def under_torchrun() -> bool:
    """True when the torchrun environment (``RANK`` and ``WORLD_SIZE``) is present."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_initialized() else 0


def init(device: str | torch.device | None = None) -> torch.device:
    """Join the torchrun process group (or fall back to a world of one) and return this rank's device.

    ``device``: None picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU;
    pass ``"cpu"`` to force gloo on CPU even on a GPU machine. Calling ``init``
    again returns the device chosen the first time (asking for another kind of
    device then is an error).
    """
    global _device
    if _device is not None:
        if device is not None and torch.device(device).type != _device.type:
            raise RuntimeError(f"dist.init() already chose {_device}; cannot switch to {device} (call cleanup() first)")
        return _device
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if under_torchrun() and not is_initialized():
        missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"RANK/WORLD_SIZE are set but {missing} are not: launch with torchrun "
                "(python -m torch.distributed.run), which sets all of them"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend, init_method="env://", **_timeout())
    _device = device
    return device


def _timeout() -> dict:
    """``{"timeout": …}`` from ``PI2SB_COLLECTIVE_TIMEOUT_S``, or nothing (torch's default)."""
    text = os.environ.get(TIMEOUT_VAR, "").strip()
    if not text:
        return {}
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise RuntimeError(f"{TIMEOUT_VAR} must be a number of seconds > 0; got {text!r}")
    return {"timeout": datetime.timedelta(seconds=seconds)}


def device() -> torch.device:
    """The device ``init`` chose (calls ``init()`` when it has not run yet)."""
    return _device if _device is not None else init()


def rank() -> int:
    return torch_dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """``print`` on rank 0 only (flushed, so torchrun's interleaved logs stay readable)."""
    if is_main():
        kwargs.setdefault("flush", True)
        builtins.print(*args, **kwargs)


def barrier() -> None:
    """Wait for every rank; returns at once in a world of one."""
    if is_initialized() and world_size() > 1:
        if torch_dist.get_backend() == "nccl":
            torch_dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            torch_dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks, as a new tensor (the input is left as it is).

    Integer tensors are averaged in float32. Every rank must call it (it is a collective).
    """
    out = tensor.detach().clone()
    if not out.is_floating_point():
        out = out.float()
    if is_initialized() and world_size() > 1:
        torch_dist.all_reduce(out, op=torch_dist.ReduceOp.SUM)
        out /= world_size()
    return out


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of ``tensor`` over all ranks, as a new tensor on ``tensor``'s device
    (e.g. the union of per-rank flags). Every rank must call it (it is a collective)."""
    out = tensor.detach().clone()
    if is_initialized() and world_size() > 1:
        torch_dist.all_reduce(out, op=torch_dist.ReduceOp.MAX)
    return out


def all_gather_object(obj) -> list:
    """Every rank's ``obj`` (any picklable value) in a list, in rank order; ``[obj]`` in a world of one.
    Every rank must call it (it is a collective)."""
    if not (is_initialized() and world_size() > 1):
        return [obj]
    out = [None] * world_size()
    torch_dist.all_gather_object(out, obj)
    return out


class ShardedSampler(DistributedSampler):
    """A ``DistributedSampler`` that can also start part-way through an epoch.

    Used in every world size (a world of one is one shard), so the order of an epoch
    is a function of ``(seed, epoch)`` alone: ``set_epoch(e, start=k)`` yields that
    epoch's order without its first ``k`` indices, which is how a resumed run
    continues exactly where the checkpoint left off.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int,
                 drop_last: bool) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must lie in [0, {self.num_samples}]; got {start}")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


class _ShardBatches(BatchSampler):
    """Batches of a :class:`ShardedSampler` as index lists, with the sampler's ``set_epoch``/``num_samples``."""

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.set_epoch(epoch, start)

    @property
    def num_samples(self) -> int:
        return self.sampler.num_samples


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True,
                num_workers: int = 0) -> DataLoader:
    """A ``DataLoader`` over this rank's shard of ``dataset``; ``batch_size`` is per rank.

    The sampler is a :class:`ShardedSampler` (a ``DistributedSampler``) in every world
    size; call ``loader.sampler.set_epoch(epoch)`` before each epoch so shuffling
    changes between epochs. The loader has its own seeded generator, so creating
    iterators never consumes the global RNG. A ``TensorDataset`` is indexed with the
    whole batch of indices at once (one gather, not ``batch_size`` item calls and a
    collate: for the 2D toys that per-item work was most of a training step).
    """
    sampler = ShardedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed,
                             drop_last=drop_last)
    # persistent: batches_from iterates the loader once per epoch; without it every epoch re-spawns the workers.
    common = dict(num_workers=num_workers, persistent_workers=num_workers > 0,
                  pin_memory=_device is not None and _device.type == "cuda",
                  generator=torch.Generator().manual_seed(seed))
    if isinstance(dataset, TensorDataset):
        batched = _ShardBatches(sampler, batch_size, drop_last)
        loader = DataLoader(dataset, sampler=batched, batch_size=None, **common)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **common)
    return loader


def _shard_sampler(loader: DataLoader) -> tuple[ShardedSampler | _ShardBatches, int, bool]:
    """(the sampler, the batch size, drop_last) of a :func:`make_loader` loader, either kind."""
    if loader.batch_size is None:  # a TensorDataset loader: its "sampler" yields whole batches
        return loader.sampler, loader.sampler.batch_size, loader.sampler.drop_last
    return loader.sampler, loader.batch_size, loader.drop_last


def batches_from(loader: DataLoader, start: int = 0) -> Iterator:
    """This rank's batches from a :func:`make_loader` loader, epoch after epoch forever, from batch ``start`` on.

    Batch ``start`` counts from the first batch of epoch 0, so a resumed run passes the
    number of batches it has already consumed and sees exactly the batches an
    uninterrupted run would. (tensor, label) items come back as the tensor alone.
    """
    sampler, size, drop_last = _shard_sampler(loader)
    n = sampler.num_samples
    per_epoch = n // size if drop_last else -(-n // size)
    epoch, skip = divmod(start, per_epoch)
    while True:
        sampler.set_epoch(epoch, start=skip * size)
        for batch in loader:
            yield batch[0] if isinstance(batch, (list, tuple)) else batch
        epoch, skip = epoch + 1, 0


def cleanup() -> None:
    """Leave the process group (if one was joined); safe to call in a world of one."""
    global _device
    if is_initialized():
        torch_dist.destroy_process_group()
    _device = None
