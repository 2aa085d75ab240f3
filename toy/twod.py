"""Pseudo-hashing on the blind 2D problem, headless: every strategy × OT-ODE on/off × seeds.

The experiment of notebook 04 (same library calls: ``pi2sb_lab.experiments.twod_ablation``).
Writes ``results.md`` (the table), ``results.json`` (config, every run, the
summary) and ``restored.png`` (restored points against the truth, first seed)
to the run folder and prints the table.

    python toy/twod.py                       # defaults: 3 seeds, 600 steps, all strategies, OT-ODE off and on
    python toy/twod.py --seeds 5 --total-steps 2000 --out runs/twod-long
    python toy/twod.py --strategies origin res --ot-ode off --condition-on-y
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from pi2sb_lab.cli import check_out_dir, int_at_least, path_arg
from pi2sb_lab.hashing import STRATEGIES
from pi2sb_lab.experiments.twod_ablation import check_strategies, run_ablation, write_report
from pi2sb_lab.experiments.twod import DEGRADATIONS, BridgeConfig
from pi2sb_lab.schedule import MAX_NFE

OT_ODE = {"off": (False,), "on": (True,), "both": (False, True)}


def strategy_name(name: str) -> str:
    """argparse type: a canonical strategy name, or an error that lists the valid ones."""
    try:
        return check_strategies([name])[0]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = BridgeConfig()
    p = argparse.ArgumentParser(prog="toy/twod.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int_at_least(1), default=3, help="number of seeds, 0 … N−1 (default 3)")
    p.add_argument("--total-steps", "--steps", type=int_at_least(1), default=defaults.total_steps,
                   help=f"training steps per run ({defaults.total_steps})")
    p.add_argument("--strategies", nargs="+", type=strategy_name, default=list(STRATEGIES),
                   help=f"pseudo-hashing strategies ({' '.join(STRATEGIES)})")
    p.add_argument("--ot-ode", choices=list(OT_ODE), default="both",
                   help="train and sample with the OT-ODE (I2SB Prop. 3.4): off, on or both (default both)")
    p.add_argument("--out", type=path_arg, default=None, help="run folder (default runs/twod-<timestamp>)")
    p.add_argument("--workers", type=int_at_least(1), default=2, help="processes, one thread each (default 2)")
    p.add_argument("--parameterization", choices=["x0", "eps", "karras"], default=defaults.parameterization,
                   help=f"network output (default {defaults.parameterization})")
    p.add_argument("--degradation", choices=list(DEGRADATIONS), default="default", help="blind degradation preset")
    p.add_argument("--condition-on-y", action="store_true", help="also feed the raw degraded y to the network")
    p.add_argument("--n-train", type=int_at_least(1), default=1000, help="clean training points (1000)")
    p.add_argument("--n-test", type=int_at_least(2, what=" (the metrics need two)"), default=1000,
                   help="test pairs, at least 2 (1000)")
    p.add_argument("--nfe", type=int_at_least(1, high=MAX_NFE), default=defaults.nfe,
                   help=f"sampler steps ({defaults.nfe})")
    args = p.parse_args(argv)
    # Everything is checked here, before the run folder exists: a refused run leaves nothing behind.
    try:
        args.config = BridgeConfig(total_steps=args.total_steps, parameterization=args.parameterization, nfe=args.nfe,
                                   condition_on_y=args.condition_on_y)
    except (ValueError, TypeError) as err:
        p.error(str(err))
    args.out = check_out_dir(p, args.out or Path("runs") / time.strftime("twod-%Y%m%d-%H%M%S"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out, config = args.out, args.config
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # what check_out_dir cannot see (a read-only file system, /proc as root)
        print(f"toy/twod.py: error: argument --out: cannot create {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    strategies = check_strategies(args.strategies)
    total = len(strategies) * len(OT_ODE[args.ot_ode]) * args.seeds
    start = time.perf_counter()
    with tqdm(total=total, desc="train + restore", unit="run") as bar:
        def progress(record):
            bar.set_postfix_str(f"{record.strategy} ot={'on' if record.ot_ode else 'off'} seed {record.seed}: "
                                f"dist {record.metrics.dist:.3f}")
            bar.update()

        ablation = run_ablation(strategies, OT_ODE[args.ot_ode], range(args.seeds), config=config,
                                n_train=args.n_train, n_test=args.n_test, degradation=args.degradation,
                                workers=min(args.workers, total), progress=progress)
    wall = time.perf_counter() - start
    command = "python toy/twod.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(write_report(ablation, out, command=command.strip(), seeds=args.seeds, wall_seconds=wall))
    print(f"\nwrote {out / 'results.md'}, {out / 'results.json'}, {out / 'restored.png'} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
