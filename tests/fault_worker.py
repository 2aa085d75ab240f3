"""Run by tests/test_faults.py in a subprocess: a short 2D training run that can be made to stop dead.

    python tests/fault_worker.py RUN_DIR STEPS [--resume] [--hang-at-step K] [--hang-in-save N] [--raise-on-rank R]

--hang-at-step K: in the middle of optimizer step K (after its first micro-batch's pairs are made)
    write RUN_DIR/../hanging and sleep, so the test can ``kill -9`` a run mid-step.
--hang-in-save N: the N-th checkpoint write puts half of the file on disk (flushed), writes the
    marker and sleeps: a ``kill -9`` then lands during the write.
--raise-on-rank R: under torchrun, rank R raises in step 3 (the other rank then waits in a collective).
--hang-on-rank R: rank R sleeps in step 3 instead (only the collective timeout can end the other).
At the end, RUN_DIR/../result.pt holds the losses and the final weights.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from pi2sb_lab import checkpoint, dist
from pi2sb_lab.schedule import SymmetricSchedule
from pi2sb_lab.train import training_loop


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 32), nn.SiLU(), nn.Dropout(0.1), nn.Linear(32, 2))

    def forward(self, x, t, cond=None):
        t = t.reshape(-1, 1).to(x)
        return self.net(torch.cat([x, t, torch.cos(math.pi * t), torch.sin(math.pi * t)], dim=1))


def hang(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(120)  # the test kills us long before
    raise SystemExit("fault_worker: was not killed")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("steps", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--hang-at-step", type=int)
    p.add_argument("--hang-in-save", type=int)
    p.add_argument("--raise-on-rank", type=int)
    p.add_argument("--hang-on-rank", type=int)
    args = p.parse_args()
    torch.set_num_threads(1)
    marker = args.run_dir.parent / "hanging"
    dist.init("cpu")
    Path(args.run_dir.parent / f"pid-rank{dist.rank()}").write_text(str(os.getpid()))

    state = {"pairs": 0}
    grad_accum = 2

    def pairs(x, generator):
        state["pairs"] += 1
        step = (state["pairs"] - 1) // grad_accum + 1  # 1-based optimizer step of this micro-batch
        if args.hang_at_step is not None and state["pairs"] == (args.hang_at_step - 1) * grad_accum + 1:
            hang(marker)
        if args.raise_on_rank == dist.rank() and step == 3:
            (args.run_dir.parent / "failed-at").write_text(repr(time.time()))
            raise RuntimeError(f"rank {dist.rank()} fails on purpose in step 3")
        if args.hang_on_rank == dist.rank() and step == 3:
            (args.run_dir.parent / "failed-at").write_text(repr(time.time()))
            hang(marker)
        noise = torch.randn(x.shape, generator=generator)
        return x, x.flip(1) + 0.1 * noise, None

    if args.hang_in_save is not None:
        real_save, saves = torch.save, {"n": 0}

        def half_save(obj, f, *a, **kw):
            saves["n"] += 1
            if saves["n"] != args.hang_in_save:
                return real_save(obj, f, *a, **kw)
            buffer = io.BytesIO()
            real_save(obj, buffer, *a, **kw)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            hang(marker)

        checkpoint.torch.save = half_save  # the module's torch is the torch module: patch only while we run

    data = torch.randn(96, 2, generator=torch.Generator().manual_seed(0))
    result = training_loop(model=TinyMLP(), schedule=SymmetricSchedule(), dataset=data, pair_fn=pairs,
                           total_steps=args.steps, batch_size=16, grad_accum=grad_accum, lr=1e-2, ema_decay=0.9,
                           run_dir=args.run_dir, resume=args.resume, checkpoint_every=2, keep_checkpoints=2,
                           log_every=2, progress=False)
    if dist.is_main():
        torch.save({"losses": result.losses, "model": result.model.state_dict(), "ema": result.ema.state_dict(),
                    "steps": result.steps}, args.run_dir.parent / "result.pt")
    dist.cleanup()


if __name__ == "__main__":
    main()
