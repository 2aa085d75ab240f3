"""Per-step overhead of sampler.sample with a negligible network: cached step tables vs the old per-step schedule.

Three loops walk the same grid with the same identity "network" (so the time is the sampler's own):

  table   ``sampler.sample`` as it is: the grid's step coefficients computed once (float64, cached per
          family + grid + η) and cast once; a step is two multiply-adds and a noise draw.
  before  the same walk evaluating ``bridge.step_posterior`` at every step, as the sampler did before
          (the float64 schedule evaluated twice per step, plus the parameterization's σ_t).
  floor   a bare loop over precomputed coefficient tensors with no checks, callbacks or trajectory: what a
          sampler reading precomputed tables (NVlabs/I2SB's way) costs at least.

The ratios are printed, never asserted (timing belongs here, not in tests). One CPU thread.

    python bench/sampler_steps.py            # NFE 1000, a 4×1×32×32 batch, 5 repeats
    python bench/sampler_steps.py --quick    # NFE 50, to check that it runs
"""

from __future__ import annotations

import argparse
import time

import torch

from pi2sb_lab.bridge import randn_like, step_posterior
from pi2sb_lab.cli import int_at_least
from pi2sb_lab.parameterization import EpsParam
from pi2sb_lab.sampler import clear_step_tables, sample, step_table
from pi2sb_lab.schedule import SymmetricSchedule, time_grid


def identity(x_t, t, cond=None):
    return x_t


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nfe", type=int_at_least(1), default=1000)
    p.add_argument("--repeats", type=int_at_least(1), default=5)
    p.add_argument("--quick", action="store_true", help="NFE 50, 2 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.nfe, args.repeats = 50, 2
    torch.set_num_threads(1)
    sched = SymmetricSchedule()
    model = EpsParam(identity, sched)
    x1 = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    grid = time_grid(args.nfe, "quadratic")

    def table():
        sample(model, x1, sched, nfe=args.nfe, generator=torch.Generator().manual_seed(1))

    @torch.no_grad()
    def before():
        x, g = x1, torch.Generator().manual_seed(1)
        for t, s in grid.steps():
            mean, std = step_posterior(sched, model.pred_x0(x, t), x, t, s)
            x = mean if s == 0 else mean + std * randn_like(x, g)

    tab = step_table(sched, grid).cast(x1.dtype, x1.device)
    sigmas = [sched.sigma2(t).sqrt().float() for t, _ in grid.steps()]

    @torch.no_grad()
    def floor():
        x, g = x1, torch.Generator().manual_seed(1)
        for n, ((a, _, k, rho), sigma) in enumerate(zip(tab, sigmas)):
            x0 = x - sigma * identity(x, None)
            x = a * x0 + k * x
            if n < args.nfe - 1:
                x = x + rho * torch.randn(x.shape, generator=g)

    clear_step_tables()
    start = time.perf_counter()
    table()
    first = time.perf_counter() - start
    results = {name: best_of(fn, args.repeats) for name, fn in (("table", table), ("before", before), ("floor", floor))}
    per_step = {k: 1e6 * v / args.nfe for k, v in results.items()}
    print(f"NFE {args.nfe}, batch {tuple(x1.shape)}, identity network, best of {args.repeats}, 1 thread")
    for name, us in per_step.items():
        print(f"  {name:7s} {us:8.1f} µs/step")
    print(f"  first call (builds the table): {1e6 * first / args.nfe:.1f} µs/step")
    print(f"ratio before/table {results['before'] / results['table']:.2f}×; table/floor "
          f"{results['table'] / results['floor']:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
