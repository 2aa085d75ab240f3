"""Restore a folder of degraded faces with a trained P-I2SB checkpoint (P-I2SB Alg. 2): PNGs out.

    python full/restore.py runs/e-cat runs/celeba-test/lq runs/e-cat/restored --params runs/celeba-test/params
    python full/restore.py runs/e-cat/checkpoint-000040000.pt faces/ out/ --nfe 10 --ot-ode --estimator runs/est
    torchrun --nproc_per_node 8 full/restore.py runs/e-cat LQ_DIR OUT_DIR      # files sharded over ranks

CHECKPOINT is a checkpoint file or a run folder (its latest checkpoint); the network is
rebuilt from the config stored in it, with the EMA weights unless --weights model.
Each input (PNG/JPEG, a folder or a zip, resized to the model's size) becomes
OUT/NAME.png: ŷ = endpoint(y) → --nfe sampler steps (the OT-ODE with --ot-ode) →
decode (eq. 18). Models trained with the degradation-aware condition (``da``) need
each input's eq. 19 vector: --params DIR holds make_testset.py's NAME.json files
(the true draws of a synthetic test set), or --estimator RUN predicts them from the
LQ image (a run of `full/train.py estimator`, EMA weights; for real-world faces).
Noise-I2SB (d-noise, noise) decodes x̂ with DDIM on a VP prior when given --prior RUN
(a run of `full/train.py prior`; --prior-nfe steps, P-I2SB eq. 18); without one its x̂
is written as it is, and restore.json says which.

A rerun skips the inputs whose PNG exists (files are written atomically, so an
existing one is complete); OUT/restore.json, written before the first image, records
the checkpoint and settings, and a rerun with another checkpoint (or NFE, seed, …) into
the same OUT is refused rather than mixed in. Unreadable inputs are skipped and listed in
OUT/skipped.txt. OUT may not be the input folder or inside it. Each image's sampling
noise is seeded by --seed and its own file name, so its restoration does not depend
on the batch size, the number of ranks or which files were restored before.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

if __package__ in (None, ""):  # run as a script: make `full` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from full.common import estimator_of, prior_of, recipe_of  # noqa: E402
from full.config import ConfigError, config_from_dict  # noqa: E402
from pi2sb_lab import dist  # noqa: E402
from pi2sb_lab.atomic import write_atomic  # noqa: E402
from pi2sb_lab.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint  # noqa: E402
from pi2sb_lab.cli import path_arg  # noqa: E402
from pi2sb_lab.data.images import ImageError, sample_seed, save_png, to_float  # noqa: E402
from pi2sb_lab.degrade import DEGRADATION_PARAM_NAMES  # noqa: E402
from pi2sb_lab.diffusion import DDIMDenoiser, VPSchedule  # noqa: E402
from pi2sb_lab.preflight import (PreflightError, argparse_errors, check_apart, check_device,  # noqa: E402
                                 check_images, check_out_dir, output_stems)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=path_arg, help="checkpoint file, or a run folder (its latest checkpoint)")
    parser.add_argument("input", type=path_arg, help="folder or .zip of degraded faces (PNG/JPEG)")
    parser.add_argument("out", type=path_arg, help="output folder for the restored PNGs")
    parser.add_argument("--nfe", type=int, default=100, help="sampler steps (network calls), default 100")
    parser.add_argument("--ot-ode", action="store_true", help="deterministic OT-ODE sampling (I2SB Prop. 3.4)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per sampler batch per rank (default 4)")
    parser.add_argument("--weights", choices=("ema", "model"), default="ema", help="EMA (default) or raw weights")
    parser.add_argument("--params", type=path_arg, help="folder of NAME.json eq. 19 draws (make_testset.py's params/)")
    parser.add_argument("--estimator", type=path_arg,
                        help="a `full/train.py estimator` run folder or checkpoint: predicts the da vectors")
    parser.add_argument("--prior", type=path_arg,
                        help="a `full/train.py prior` run folder or checkpoint: Noise-I2SB's DDIM decode (eq. 18)")
    parser.add_argument("--prior-nfe", type=int, default=10, help="DDIM steps of that decode (default 10)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda:LOCAL_RANK when available)")
    return parser


def check_args(parser, args):
    """Everything checkable before any image is decoded; returns (checkpoint, config, its recipe, input files,
    helpers): ``helpers`` maps "estimator" and "prior" to their (checkpoint, config) when given."""
    for name in ("nfe", "batch_size", "prior_nfe"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    with argparse_errors(parser):
        check_device(args.device)
        if not args.input.exists():  # before the checkpoint's needs: the first thing a typo breaks
            raise PreflightError(f"INPUT {str(args.input)!r} does not exist: no such folder or zip of PNG/JPEG images")
        check_out_dir(args.out, "OUT")
        check_apart({"INPUT": args.input}, args.out, "OUT")
    ckpt, cfg = read_full_checkpoint(parser, args.checkpoint, "bridge")
    recipe = recipe_of(cfg)  # built once: schedule, strategy, condition (the network comes with the weights)
    da = recipe.conditioning.da  # the model reads eq. 19's vector
    if da and (args.params is None) == (args.estimator is None):
        parser.error(f"this checkpoint (variant {cfg.variant}, condition {cfg.conditioning}) needs each input's "
                     "eq. 19 vector: give either --params DIR (make_testset.py's params/: the true draws) or "
                     "--estimator RUN (a `full/train.py estimator` run: predicted from y)")
    if args.params is not None and not args.params.is_dir():
        parser.error(f"--params {str(args.params)!r} is not a folder")
    if args.prior is not None and cfg.strategy != "noise":
        parser.error(f"--prior decodes Noise-I2SB only; this checkpoint (variant {cfg.variant}) uses "
                     f"{cfg.strategy} hashing, whose decode needs no prior")
    helpers = {}
    for model in ("estimator", "prior"):  # the helper runs a restorer needs, trained at the bridge's size
        if getattr(args, model) is not None:
            helpers[model] = read_full_checkpoint(parser, getattr(args, model), model)
            if helpers[model][1].image_size != cfg.image_size:
                parser.error(f"--{model} {str(getattr(args, model))!r} was trained at "
                             f"{helpers[model][1].image_size}², the bridge at {cfg.image_size}²")
    with argparse_errors(parser):
        files = check_images(args.input, cfg.image_size, "INPUT")
        args.stems = output_stems(files, "INPUT")
        if da and args.params is not None:
            check_params(args.params, args.stems)
    check_same_settings(parser, args.out, settings_of(args, ckpt, cfg, recipe, helpers))
    return ckpt, cfg, recipe, files, helpers


def check_params(folder: Path, stems: list[str]) -> None:
    """Some input has a readable NAME.json with the whole eq. 19 vector in ``folder`` (checked before any
    sampling: --params of another test set would otherwise restore nothing, one skipped file at a time).
    An input without one is skipped and listed in skipped.txt, like an unreadable image."""
    problems = []
    for stem in stems:
        try:
            params_vector(folder, stem)
        except (OSError, ValueError) as err:
            problems.append(str(err))
    if len(problems) == len(stems):
        raise PreflightError(f"--params {str(folder)!r} does not fit INPUT: {len(problems)} of {len(stems)} "
                             f"input(s) have no usable vector (first: {problems[0]}); is it the params/ folder of "
                             "the same test set (make_testset.py)?")

def settings_of(args, ckpt, cfg, recipe, helpers) -> dict:
    """What makes a restored image what it is: every PNG in OUT was made with these (restore.json)."""
    return {"checkpoint": str(ckpt.path), "step": ckpt.step, "weights": args.weights, "nfe": args.nfe,
            "ot_ode": args.ot_ode, "seed": args.seed, "variant": cfg.variant,
            "da": None if not recipe.conditioning.da else (f"estimated by {helpers['estimator'][0].path}"
                                                           if "estimator" in helpers else f"true, {args.params}"),
            "decode": (f"eq. 18 ({cfg.strategy})" if cfg.strategy != "noise" else
                       "x_hat (no --prior: eq. 18's Denoise not applied)" if "prior" not in helpers else
                       f"eq. 18 (noise): DDIM on {helpers['prior'][0].path}, {args.prior_nfe} steps")}


def check_same_settings(parser, out: Path, settings: dict) -> None:
    """A rerun into ``out`` only completes what the same checkpoint and settings began: restore.json
    is written before the first image, so images made otherwise (after more training, say) are refused
    rather than mixed with these under one record."""
    record_file = out / "restore.json"
    if not record_file.is_file():
        return
    try:
        before = json.loads(record_file.read_text())
    except (OSError, ValueError) as err:
        parser.error(f"{record_file} is unreadable ({err}); remove it or choose another output folder")
    changed = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    if changed:
        said = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in changed.items())
        parser.error(f"output folder {str(out)!r} holds images restored with other settings ({said}); "
                     "choose another output folder, or empty this one")


def read_full_checkpoint(parser, path: Path, model: str):
    """The checkpoint at ``path`` (a file, or a run folder's latest) and its full config, which must be of a
    ``model`` run ("bridge", "estimator" or "prior"); argparse errors otherwise."""
    given = path
    if path.is_dir():
        path = latest_checkpoint(path)
        if path is None:
            parser.error(f"no checkpoint-*.pt in the run folder {str(given)!r}")
    try:
        ckpt = load_checkpoint(path, map_location="cpu")
        cfg = config_from_dict(ckpt.config.get("extra") or {}, f"{path} config")
    except (FileNotFoundError, CheckpointError, ConfigError) as err:
        parser.error(f"checkpoint {str(path)!r}: {err}")
    if not (ckpt.config.get("extra") or {}).get("net"):
        parser.error(f"checkpoint {str(path)!r} was not written by full/train.py (no full config inside)")
    if cfg.model != model:
        parser.error(f"checkpoint {str(path)!r} is of model={cfg.model!r} (variant {cfg.variant}); "
                     f"this needs model={model!r}")
    return ckpt, cfg


def load_net(net: torch.nn.Module, ckpt, weights: str, device) -> torch.nn.Module:
    """``net`` (built from the checkpoint's config) with the checkpoint's EMA or raw weights, in eval mode."""
    net.load_state_dict(ckpt.parts["ema"]["model"] if weights == "ema" else ckpt.parts["model"])
    return net.to(device).eval()


def write_record(out: Path, record: dict) -> None:
    write_atomic(out / "restore.json", json.dumps(record, indent=1) + "\n")


def params_vector(folder: Path, stem: str) -> torch.Tensor:
    """The eq. 19 vector of ``stem`` from make_testset.py's ``folder/stem.json``; ``ValueError`` naming the
    file and what is missing (``OSError`` when there is no such file)."""
    path = folder / f"{stem}.json"
    try:
        vector = json.loads(path.read_text())["vector"]
        values = [vector[k] for k in DEGRADATION_PARAM_NAMES]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: no 'vector' with the fields {', '.join(DEGRADATION_PARAM_NAMES)} "
                         f"(missing {err})") from None
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not JSON ({err.msg} at line {err.lineno})") from None
    if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
        raise ValueError(f"{path}: the vector must hold numbers in [0, 1]; got {values}")
    return torch.tensor(values, dtype=torch.float32)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ckpt, cfg, recipe, files, helpers = check_args(parser, args)
    device = dist.init(args.device)
    try:
        restorer = load_restorer(args, ckpt, cfg, recipe, helpers, device)
        settings = settings_of(args, ckpt, cfg, recipe, helpers)
        if dist.is_main():  # before any image: every PNG in OUT is then covered by this record
            args.out.mkdir(parents=True, exist_ok=True)
            write_record(args.out, {**settings, "input": str(args.input), "complete": False})
        todo = [i for i, s in enumerate(args.stems) if not (args.out / f"{s}.png").exists()]
        dist.barrier()  # every rank has listed what is left before any rank writes a file
        dist.print0(f"restoring {len(todo)} of {len(files)} images ({len(files) - len(todo)} already done) with "
                    f"{ckpt.path.name} ({args.weights}, step {ckpt.step}), NFE {args.nfe}"
                    f"{', OT-ODE' if args.ot_ode else ''}, {dist.world_size()} rank(s) on {device}")
        skipped, done = restore_share(args, files, todo[dist.rank()::dist.world_size()], restorer, device)
        if dist.world_size() > 1:
            parts = dist.all_gather_object({"skipped": skipped, "done": done})
            skipped, done = sorted(s for p in parts for s in p["skipped"]), sum(p["done"] for p in parts)
        if dist.is_main():
            finish(args, settings, skipped, done)
    finally:
        dist.cleanup()
    if todo and done == 0:  # a run that restored nothing is not a success
        print(f"restore.py: error: none of the {len(todo)} image(s) could be restored; the first reason: "
              f"{skipped[0] if skipped else 'unknown'}", file=sys.stderr)
        return 1
    return 0


class Restorer(NamedTuple):
    """What restores a batch: the bridge's network and its recipe (schedule, strategy, condition), and
    the degradation estimator when the condition needs the eq. 19 vector and none is given."""

    model: torch.nn.Module
    recipe: object
    estimator: torch.nn.Module | None
    eta: float


def load_restorer(args, ckpt, cfg, recipe, helpers: dict, device) -> Restorer:
    """The checkpoint's network (EMA or raw weights) and the helper networks it needs, on ``device``."""
    estimator = denoiser = None
    if "estimator" in helpers:
        est, est_cfg = helpers["estimator"]
        estimator = load_net(estimator_of(est_cfg), est, "ema", device)
    if "prior" in helpers:  # Noise-I2SB's Denoise(x̂; λ): DDIM from where the prior's σ/α = λ
        prior, prior_cfg = helpers["prior"]
        denoiser = DDIMDenoiser(load_net(prior_of(prior_cfg), prior, "ema", device), VPSchedule(),
                                nfe=args.prior_nfe)
        recipe = recipe.with_denoiser(denoiser)
    model = load_net(recipe.network(cfg.seed), ckpt, args.weights, device)
    return Restorer(model, recipe, estimator, cfg.eta)


def restore_share(args, files, mine: list[int], r: Restorer, device) -> tuple[list[str], int]:
    """Restore this rank's inputs ``mine`` in batches, writing OUT/STEM.png; (unreadable inputs, images done)."""
    stems = args.stems  # checked: inside OUT, one input per name
    skipped, done = [], 0
    bar = tqdm(total=len(mine), unit="img", desc="restore", disable=not dist.is_main())
    for start in range(0, len(mine), args.batch_size):
        batch, images, vectors = [], [], []
        for i in mine[start:start + args.batch_size]:
            try:
                image = files.read(i)
                needs_vector = r.recipe.conditioning.da and r.estimator is None
                vector = params_vector(args.params, stems[i]) if needs_vector else None
            except (ImageError, OSError, KeyError, ValueError) as err:
                skipped.append(f"{files.names[i]}: {err}")
                continue
            batch.append(i)
            images.append(image)
            vectors.append(vector)
        if batch:
            y = to_float(torch.stack(images)).to(device)
            degradation = None
            if r.recipe.conditioning.da:
                degradation = r.estimator.predict(y) if r.estimator is not None else torch.stack(vectors).to(device)
            result = r.recipe.restore(r.model, y, nfe=args.nfe, ot_ode=args.ot_ode, eta=r.eta, degradation=degradation,
                                      seed=[sample_seed(args.seed, files.names[i]) for i in batch], clamp=(-1, 1))
            for k, i in enumerate(batch):
                (args.out / stems[i]).parent.mkdir(parents=True, exist_ok=True)
                save_png(result.x[k], args.out / f"{stems[i]}.png")
            done += len(batch)
        bar.update(len(mine[start:start + args.batch_size]))
    bar.close()
    return skipped, done


def finish(args, settings: dict, skipped: list[str], done: int) -> None:
    """Rank 0: skipped.txt, the completed restore.json, and the summary line."""
    args.out.mkdir(parents=True, exist_ok=True)
    if skipped:
        (args.out / "skipped.txt").write_text("".join(s + "\n" for s in skipped))
    write_record(args.out, {**settings, "input": str(args.input), "complete": True,
                            "restored_now": done, "skipped": skipped})
    print(f"restored {done} image(s) into {args.out}; {len(skipped)} unreadable input(s) skipped"
          + (f" (listed in {args.out / 'skipped.txt'})" if skipped else ""))


if __name__ == "__main__":
    sys.exit(main())
