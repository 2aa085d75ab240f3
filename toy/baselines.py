"""The papers' other claims tested on MNIST, with the diffusion baselines (issue 10): one driver, four studies.

  fig8    I2SB Fig. 8: I2SB vs Palette (ε- and v-prediction) across NFE under I2SB's operators
          (SR×4, blur, JPEG, inpainting): digit accuracy, FD on our classifier's features, PSNR.
  table6  I2SB Table 6: OT-ODE vs SDE (training and sampling) per operator (JPEG 5/10, blur uniform/Gaussian).
  odedit  ODEdit Table 1: SDEdit vs ODEdit with one VP prior under unseen Hendrycks-style corruptions,
          faithfulness vs realism swept over t0 / Langevin updates.
  budget  P-I2SB's verdict vs training budget: Table 3 / Fig. 3b variants evaluated at 300, 1,500, … steps,
          Noise-I2SB decoded by the learned denoiser and by DDIM on a VP prior.
  fewstep DBIM / I3SB's few-step claim: the bridge families (I2SB, DDBM VP/VE, GOUB) × {Markovian, implicit,
          ODE} sampler × NFE, with Palette-DDIM as the non-bridge reference.

Each writes results.md (tables, verdicts, wall and CPU time), results.json, figures and checkpoints to its
run folder (default runs/<study>-<timestamp>; a rerun into the same --out reloads finished models).

    python toy/baselines.py fig8                     # 3 seeds, 4 operators, 3 models
    python toy/baselines.py table6                   # 3 seeds, 4 operators, SDE vs OT-ODE
    python toy/baselines.py odedit                   # 3 seeds, 7 corruptions × 2 severities
    python toy/baselines.py budget                   # 3 seeds, a-vanilla vs res at 300 and 1,500 steps
    python toy/baselines.py fewstep                  # 3 seeds, 2 operators, 4 families × 3 samplers + Palette
    python toy/baselines.py fig8 --quick --out /tmp/q  # a smoke test of the whole pipeline, seconds
    python toy/baselines.py budget --variants a-vanilla c-lq-da d-noise e-cat f-res noise cat res --budgets 300 1500 5000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_START = time.perf_counter()

import torch  # noqa: E402

from pi2sb_lab.atomic import write_atomic  # noqa: E402
from pi2sb_lab.cli import check_out_dir, flag_error, int_at_least, make_out_dir, path_arg, seed_value  # noqa: E402
from pi2sb_lab.notebook import resolve_device  # noqa: E402
from pi2sb_lab.viz import savefig  # noqa: E402

STUDIES = ("fig8", "table6", "odedit", "budget", "fewstep")


positive_int = int_at_least(1)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", nargs="+", type=seed_value, default=[0, 1, 2],
                   help="training seeds (default 0 1 2; tables show mean ± std over them)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default auto)")
    p.add_argument("--workers", type=positive_int,
                   help=f"CPU processes running cells side by side, one thread each (default: the cores available, "
                        f"here {len(os.sched_getaffinity(0))}; 1 with --quick; always 1 on CUDA)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads of the main process (default 1)")
    p.add_argument("--out", type=path_arg, help="run folder (default runs/<study>-<timestamp>; an existing one resumes)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the whole pipeline")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def names_type(check, what: str):
    """argparse type: one name accepted by ``check`` (which raises ValueError listing the valid ones)."""

    def parse(text: str) -> str:
        try:
            return check([text])[0]
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = what
    return parse


# --------------------------------------------------------------------------- fig8 and table6

QUICK_OPERATORS = dict(total_steps=12, batch_size=16, lr_warmup_steps=2, train_size=256, eval_size=16,
                       classifier_epochs=1)


def add_operator_study(p: argparse.ArgumentParser, *, operators, models, nfes) -> None:
    from pi2sb_lab.experiments.baselines import BaselineConfig, check_models, check_operators

    d = BaselineConfig()
    p.add_argument("--operators", nargs="+", type=names_type(check_operators, "operator"), default=list(operators),
                   metavar="OP", help=f"I2SB operators (default {' '.join(operators)})")
    p.add_argument("--models", nargs="+", type=names_type(check_models, "model"), default=list(models),
                   metavar="MODEL", help=f"models: i2sb, i2sb-ot, palette, palette-v (default {' '.join(models)})")
    p.add_argument("--nfes", nargs="+", type=positive_int, default=list(nfes),
                   help=f"sampling steps evaluated (default {' '.join(map(str, nfes))})")
    p.add_argument("--total-steps", "--steps", type=positive_int,
                   help=f"training steps per model ({d.total_steps})")
    p.add_argument("--eval-size", type=positive_int, help=f"held-out test digits scored ({d.eval_size})")
    p.add_argument("--train-size", type=positive_int, help="clean training digits (default: all 4,000)")
    p.add_argument("--net", help=f"U-Net config name ({d.net})")


def add_fig8(p: argparse.ArgumentParser) -> None:
    """I2SB Fig. 8 on MNIST: I2SB vs Palette across NFE under I2SB's operators.

    Trains I2SB, Palette (ε-prediction, the paper's) and Palette (v-prediction) on the same
    pairs per operator and seed, samples both with DDPM steps at every NFE, and plots digit
    accuracy, FD and PSNR against NFE. Writes fig8.png, samples.png."""
    from pi2sb_lab.experiments.baselines import FIG8_NFES, FIG8_OPERATORS

    add_operator_study(p, operators=FIG8_OPERATORS, models=("i2sb", "palette", "palette-v"), nfes=FIG8_NFES)
    p.set_defaults(prepare=prepare_operator_study)


def add_table6(p: argparse.ArgumentParser) -> None:
    """I2SB Table 6 on MNIST: OT-ODE vs SDE (training and sampling) per operator.

    Trains I2SB with the stochastic bridge and with its posterior mean (OT-ODE, Prop. 3.4)
    per operator and seed, and reports the paired differences (OT-ODE − SDE) in FD and
    digit accuracy: does OT-ODE help deblurring and hurt JPEG restoration?"""
    from pi2sb_lab.experiments.baselines import TABLE6_OPERATORS

    add_operator_study(p, operators=TABLE6_OPERATORS, models=("i2sb", "i2sb-ot"), nfes=(10, 100))
    p.set_defaults(prepare=prepare_operator_study)


def prepare_operator_study(args):
    from pi2sb_lab.experiments import baselines as B
    from pi2sb_lab.experiments import baselines_report as R

    settings = dict(QUICK_OPERATORS) if args.quick else {}
    settings |= {k: getattr(args, k) for k in ("total_steps", "eval_size", "train_size", "net") if getattr(args, k)}
    config = B.BaselineConfig(**settings)
    if args.study == "table6" and set(args.models) != {"i2sb", "i2sb-ot"}:
        raise ValueError(f"table6 compares i2sb with i2sb-ot: --models must be exactly those two; got {args.models}")
    nfes = [1, 2] if args.quick else sorted(set(args.nfes))

    def run(out: Path, progress: bool):
        study = B.run_operator_study(config, operators=args.operators, models=args.models, seeds=args.seeds,
                                     nfes=nfes, device=args.device, run_dir=out, workers=args.workers,
                                     progress=progress)
        return R.operator_report(study, args.study)

    return run


# --------------------------------------------------------------------------- odedit

QUICK_EDIT = dict(total_steps=12, batch_size=16, lr_warmup_steps=2, train_size=256, eval_size=8, classifier_epochs=1,
                  sdedit_nfe=4, odedit_nfe=4)


def add_odedit(p: argparse.ArgumentParser) -> None:
    """ODEdit Table 1 on MNIST: SDEdit vs ODEdit with one VP prior under unseen corruptions.

    Trains one unconditional VP prior per seed on clean digits, corrupts held-out digits by
    Hendrycks-style corruptions (CIFAR-10-C parameters) and ODEdit's random-pixel and line
    masks, restores them with SDEdit over t0 and ODEdit over the number K of Langevin
    updates, and compares fidelity (PSNR to the clean digit) at equal realism (FD).
    Writes frontier.png, samples.png."""
    from pi2sb_lab.experiments.corruptions import CORRUPTIONS, check_corruptions
    from pi2sb_lab.experiments.editing import ODEDIT_KS, SDEDIT_T0S, EditConfig

    d = EditConfig()
    p.add_argument("--corruptions", nargs="+", type=names_type(check_corruptions, "corruption"),
                   default=list(CORRUPTIONS), metavar="NAME", help=f"corruptions (default all: {' '.join(CORRUPTIONS)})")
    p.add_argument("--severities", nargs="+", type=int, default=[2, 4], help="severities 1–5 (default 2 4)")
    p.add_argument("--t0s", nargs="+", type=float, default=list(SDEDIT_T0S),
                   help=f"SDEdit noise levels t0 (default {' '.join(map(str, SDEDIT_T0S))})")
    p.add_argument("--langevin", nargs="+", type=int, default=list(ODEDIT_KS),
                   help=f"ODEdit Langevin updates K per latent (default {' '.join(map(str, ODEDIT_KS))})")
    p.add_argument("--total-steps", "--prior-steps", type=positive_int,
                   help=f"training steps of the VP prior ({d.total_steps})")
    p.add_argument("--prediction", choices=["eps", "v"], help=f"the prior's parameterization ({d.prediction})")
    p.add_argument("--step-size", type=float, help=f"ODEdit's Langevin step size ε ({d.step_size})")
    p.add_argument("--temperature", type=float, help=f"ODEdit's temperature T ({d.temperature:.3g})")
    p.add_argument("--odedit-nfe", type=positive_int, help=f"ODEdit's DDIM steps N ({d.odedit_nfe})")
    p.add_argument("--eval-size", type=positive_int, help=f"held-out digits per condition ({d.eval_size})")
    p.add_argument("--train-size", type=positive_int, help="clean training digits (default: all 4,000)")
    p.set_defaults(prepare=prepare_odedit)


def prepare_odedit(args):
    from pi2sb_lab.experiments import editing as E
    from pi2sb_lab.experiments import studies_report as R

    settings = dict(QUICK_EDIT) if args.quick else {}
    settings |= {k: getattr(args, k) for k in ("total_steps", "prediction", "step_size", "temperature", "odedit_nfe",
                                               "eval_size", "train_size") if getattr(args, k) is not None}
    config = E.EditConfig(**settings)
    setting_list = E.settings_for(args.t0s[:2] if args.quick else args.t0s, args.langevin[:2] if args.quick
                                  else args.langevin)
    E.edit_test_set(args.corruptions, args.severities, 2)  # checks names and severities now

    def run(out: Path, progress: bool):
        study = E.run_edit_study(config, corruptions=args.corruptions, severities=args.severities,
                                 settings=setting_list, seeds=args.seeds, device=args.device, run_dir=out,
                                 workers=args.workers, progress=progress)
        return R.edit_report(study, args.corruptions, args.severities)

    return run


# --------------------------------------------------------------------------- budget

QUICK_BUDGET = dict(batch_size=16, lr_warmup_steps=2, train_size=256, partners=1, eval_size=16, nfe=3,
                    classifier_epochs=1, estimator_steps=10, denoiser_steps=10)


def add_budget(p: argparse.ArgumentParser) -> None:
    """P-I2SB's verdict vs training budget: MNIST variants measured at several step counts.

    Trains each variant × seed once up to the largest budget and measures its EMA model at
    every budget (the same models a shorter run ends with). Noise variants are decoded both
    by the learned denoiser and by DDIM on a VP prior (P-I2SB eq. 18). Writes budget.png.
    Variants: a-vanilla, b-lq, c-lq-da, d-noise, e-cat, f-res (Table 3), noise, cat, res (Fig. 3b)."""
    from pi2sb_lab.experiments.budget import BUDGETS
    from pi2sb_lab.experiments.mnist import MNISTConfig, check_variants

    d = MNISTConfig()
    p.add_argument("--variants", nargs="+", type=names_type(check_variants, "variant"), default=["a-vanilla", "res"],
                   metavar="NAME", help="variants (default a-vanilla res: Fig. 3b's pair)")
    p.add_argument("--budgets", nargs="+", type=positive_int, default=list(BUDGETS),
                   help=f"training steps at which to measure (default {' '.join(map(str, BUDGETS))})")
    p.add_argument("--eval-size", type=positive_int, help=f"held-out test digits scored ({d.eval_size})")
    p.add_argument("--nfe", type=positive_int, help=f"sampler steps at test time ({d.nfe})")
    p.add_argument("--ddim-nfe", type=positive_int, default=10, help="DDIM steps of Noise-I2SB's DDIM decode (10)")
    p.add_argument("--prior-steps", type=positive_int, help="training steps of the VP prior for the DDIM decode "
                                                            "(the odedit default)")
    p.set_defaults(prepare=prepare_budget)


def prepare_budget(args):
    from pi2sb_lab.experiments import budget as B
    from pi2sb_lab.experiments import studies_report as R
    from pi2sb_lab.experiments.editing import EditConfig
    from pi2sb_lab.experiments.mnist import MNISTConfig

    settings = dict(QUICK_BUDGET) if args.quick else {}
    settings |= {k: getattr(args, k) for k in ("eval_size", "nfe") if getattr(args, k) is not None}
    config = MNISTConfig(**settings)
    prior = EditConfig(**{**(dict(QUICK_EDIT) if args.quick else {}),
                          **({"total_steps": args.prior_steps} if args.prior_steps else {})})
    budgets = [4, 8] if args.quick else sorted(set(args.budgets))

    def run(out: Path, progress: bool):
        study = B.run_budget_study(config, budgets=budgets, variants=args.variants, seeds=args.seeds,
                                   prior_config=prior, ddim_nfe=args.ddim_nfe, device=args.device, run_dir=out,
                                   workers=args.workers, progress=progress)
        return R.budget_report(study)

    return run


# --------------------------------------------------------------------------- fewstep


def add_fewstep(p: argparse.ArgumentParser) -> None:
    """DBIM / I3SB's few-step claim on MNIST: bridge families × samplers × NFE.

    Trains each bridge family (I2SB, DDBM VP, DDBM VE, GOUB) and a v-prediction Palette per
    operator and seed, restores the held-out digits with the Markovian (η = 1), implicit
    (η = 0 with booting noise) and ODE (η = 0) samplers — Palette with DDIM — at every NFE,
    and plots PSNR, digit accuracy and FD against NFE. Writes fewstep.png."""
    from pi2sb_lab.experiments.fewstep import FEWSTEP_NFES, FEWSTEP_OPERATORS, MODELS

    add_operator_study(p, operators=FEWSTEP_OPERATORS, models=(), nfes=FEWSTEP_NFES)
    for action in p._actions:  # the family names are not baselines' model names
        if action.dest == "models":
            action.type, action.default, action.choices = None, list(MODELS), list(MODELS)
            action.help = f"models (default all: {' '.join(MODELS)})"
    p.set_defaults(prepare=prepare_fewstep)


def prepare_fewstep(args):
    from pi2sb_lab.experiments import baselines as B
    from pi2sb_lab.experiments import fewstep as F

    settings = dict(QUICK_OPERATORS) if args.quick else {}
    settings |= {k: getattr(args, k) for k in ("total_steps", "eval_size", "train_size", "net") if getattr(args, k)}
    config = B.BaselineConfig(**settings)
    nfes = [1, 2] if args.quick else sorted(set(args.nfes))
    B.check_operators(args.operators)

    def run(out: Path, progress: bool):
        study = F.run_fewstep_study(config, operators=args.operators, models=args.models, seeds=args.seeds,
                                    nfes=nfes, device=args.device, run_dir=out, workers=args.workers,
                                    progress=progress)
        return F.fewstep_report(study)

    return run


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy/baselines.py", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="study", metavar="STUDY", required=True, help=" | ".join(STUDIES))
    for name, add in (("fig8", add_fig8), ("table6", add_table6), ("odedit", add_odedit), ("budget", add_budget),
                      ("fewstep", add_fewstep)):
        doc = add.__doc__.strip()
        q = sub.add_parser(name, help=doc.split("\n")[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_common(q)
        add(q)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must not repeat a seed; got {args.seeds}")
    if args.workers is None:
        args.workers = 1 if args.quick else len(os.sched_getaffinity(0))
    out = args.out or Path("runs") / time.strftime(f"{args.study}-%Y%m%d-%H%M%S")
    check_out_dir(parser, out)
    try:
        args.device = resolve_device(args.device)
        study = args.prepare(args)  # checks every setting before anything is trained
    except ValueError as err:
        parser.error(flag_error(err, {"DEVICE": "--device"}))
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads)
    make_out_dir(parser, out)
    command = "python toy/baselines.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"run folder {out}; device {args.device}; seeds {args.seeds}", flush=True)
    report, data, figures = study(out, progress=not args.no_progress)
    for name, fig in figures.items():
        savefig(fig, out / name)
    wall = time.perf_counter() - _START
    cpu = data.get("cpu_seconds", float("nan"))
    timing = (f"Device {args.device}, {args.workers} worker process(es); wall time {wall:.0f} s; CPU time "
              f"{cpu:.0f} s (≈ {cpu / 2:.0f} s of wall on 2 idle cores).")
    write_atomic(out / "results.json", json.dumps(data | {"command": command.strip(), "wall_seconds_total": wall,
                                                          "workers": args.workers}, indent=1))
    write_atomic(out / "results.md", f"{report.rstrip()}\n\n`{command.strip()}`\n\n{timing}\n\n"
                 + "\n".join(f"![{n}]({n})" for n in figures) + "\n")
    print("\n" + report)
    print(f"\n{timing}\nwrote {out}/results.md, results.json, {', '.join(figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
