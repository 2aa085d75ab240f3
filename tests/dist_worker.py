"""Run by tests/test_dist.py under torchrun: a few training steps, then each rank saves what it ended with.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_worker.py OUT_DIR
"""

import sys
from pathlib import Path

import torch
from torch import nn

from pi2sb_lab import dist
from pi2sb_lab.parameterization import KarrasParam
from pi2sb_lab.schedule import SymmetricSchedule
from pi2sb_lab.train import training_loop


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))

    def forward(self, x, t, cond=None):
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x)], dim=1))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    device = dist.init()
    first_batches = []

    def pairs(x, generator):
        if not first_batches:
            first_batches.append(x.clone())
        return x, x.flip(1) + 0.1 * torch.randn(x.shape, generator=generator), None

    # Each rank builds its model from its own seed: DDP must broadcast rank 0's weights.
    torch.manual_seed(dist.rank())
    schedule = SymmetricSchedule()
    model = KarrasParam(TinyMLP(), schedule)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    data = torch.randn(96, 2, generator=torch.Generator().manual_seed(0))
    result = training_loop(model=model, schedule=schedule, dataset=data, pair_fn=pairs, total_steps=4,
                           batch_size=16, grad_accum=2, lr=1e-2, ema_decay=0.5, run_dir=out / "run",
                           checkpoint_every=2, log_every=2, progress=False)
    torch.save({
        "rank": dist.rank(), "world": dist.world_size(), "device": str(device),
        "steps": result.steps, "samples_seen": result.samples_seen, "losses": result.losses,
        "model_type": type(result.model).__name__, "init": init,
        "model": result.model.state_dict(), "ema": result.ema.state_dict(), "first_batch": first_batches[0],
        "mean_rank": dist.all_reduce_mean(torch.tensor(dist.rank())).item(),
    }, out / f"rank{dist.rank()}.pt")
    dist.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
