"""Score a folder of restored faces: PSNR, SSIM, LPIPS, FID, NIQE (P-I2SB Tables 1–3), as markdown and JSON.

With --hq (a synthetic set such as make_testset.py's hq/): the full-reference metrics
between each restored image and the HQ image of the same name (any extension), FID
between the two sets, NIQE of the restored images. Without --hq (real-world faces:
LFW, CelebChild, WebPhoto, Wider): NIQE, and FID against --fid-ref (e.g. FFHQ).

    python full/evaluate.py runs/e-cat/restored --hq runs/celeba-test/hq
    python full/evaluate.py runs/e-cat/restored-lfw --fid-ref /data/ffhq512 --metrics niqe,fid
    torchrun --nproc_per_node 8 full/evaluate.py RESTORED --hq HQ      # images sharded over ranks

Writes OUT/metrics.md (one table row) and OUT/metrics.json (means, per-image values,
settings, skipped files); OUT defaults to RESTORED_metrics beside RESTORED. Weights are
never downloaded: LPIPS's backbone, FID's Inception and NIQE's model are read from the
torch hub cache ($TORCH_HOME/hub/checkpoints) and a missing one is named with its folder.
PSNR/SSIM on RGB in [0, 255] (SSIM per channel, 11×11 Gaussian); LPIPS AlexNet;
FID on torch-fidelity's TF-Inception features; NIQE on BT.601 luma (see pi2sb_lab.niqe).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from pi2sb_lab import dist
from pi2sb_lab.cli import path_arg
from pi2sb_lab.data.images import ImageError, ImageFiles, to_float
from pi2sb_lab.metrics import LPIPSMetric, MissingWeightsError, frechet_distance, lpips_backbone_file, psnr, ssim
from pi2sb_lab.preflight import argparse_errors, check_device, check_images, check_out_dir, output_stems

METRICS = ("psnr", "ssim", "lpips", "fid", "niqe")
FULL_REFERENCE = ("psnr", "ssim", "lpips")
ARROWS = {"psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "fid": "FID↓", "niqe": "NIQE↓"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("restored", type=path_arg, help="folder (or zip) of restored images")
    parser.add_argument("--hq", type=path_arg, help="folder of the HQ images with the same names (full-reference mode)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated subset of psnr,ssim,lpips,fid,niqe (default: all that apply)")
    parser.add_argument("--fid-ref", type=path_arg, help="reference folder for FID without --hq (e.g. FFHQ)")
    parser.add_argument("--fid-features", default="inception",
                        help="FID network: 'inception' (default) or 'module:factory' returning an nn.Module")
    parser.add_argument("--lpips-net", default="alex", choices=("alex", "vgg", "squeeze"), help="LPIPS trunk")
    parser.add_argument("--niqe-model", type=path_arg, default=None,
                        help="NIQE pristine model (.mat or .npz; default: niqe_modelparameters.mat in the hub cache)")
    parser.add_argument("--out", type=path_arg, help="output folder (default: RESTORED_metrics)")
    parser.add_argument("--label", default=None, help="row label in the table (default: the folder name)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per feature batch (default 16)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda:LOCAL_RANK when available)")
    return parser


class Scorers(NamedTuple):
    """The networks a metric needs, loaded once before any work (None when that metric is not asked for)."""

    niqe: object = None     # NIQE's natural-scene model
    fid_net: object = None  # FID's feature extractor


class FidPart(NamedTuple):
    """One rank's FID features: rows of ``ours``/``ref`` belong to the listing indices ``ours_idx``/``ref_idx``."""

    ours_idx: list
    ours: np.ndarray
    ref_idx: list
    ref: np.ndarray


class RankPart(NamedTuple):
    """What one rank scored, gathered on rank 0: per-image rows by name, the names it skipped (unreadable)
    or could not pair with an HQ image, and its FID features."""

    per_image: dict
    skipped: list
    unmatched: list
    fid: FidPart | None


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[str], Scorers]:
    """Every check that needs no image decoded; returns the metrics to compute and their networks."""
    with argparse_errors(parser):
        check_device(args.device)
        restored = check_images(args.restored, None, "RESTORED")
        if args.hq is not None:  # names are matched by stem: a.png and a.jpg in one set would be a guess
            output_stems(check_images(args.hq, None, "--hq"), "--hq")
            output_stems(restored, "RESTORED")
        if args.fid_ref is not None:
            check_images(args.fid_ref, None, "--fid-ref")
        args.out = check_out_dir(args.out or args.restored.with_name(args.restored.name + "_metrics"), "--out")
        check_same_evaluation(args.out, args.restored)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.metrics is None:
        wanted = list(METRICS) if args.hq else ["niqe"] + (["fid"] if args.fid_ref else [])
    else:
        wanted = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in METRICS]
        if unknown or not wanted:
            parser.error(f"--metrics {args.metrics!r}: unknown {unknown or 'empty'}; choose from {','.join(METRICS)}")
    if args.hq is None and any(m in FULL_REFERENCE for m in wanted):
        parser.error(f"--metrics {','.join(wanted)}: {'/'.join(FULL_REFERENCE)} need --hq (the reference images)")
    if "fid" in wanted and args.hq is None and args.fid_ref is None:
        parser.error("FID without --hq needs --fid-ref (a reference folder such as FFHQ)")
    if args.hq is not None and args.fid_ref is not None:
        parser.error("give --hq or --fid-ref, not both (with --hq, FID compares against the HQ set)")
    # Weights: fail now, before any work, naming the file and its folder.
    try:
        if "lpips" in wanted and not lpips_backbone_file(args.lpips_net).is_file():
            LPIPSMetric(args.lpips_net)  # raises MissingWeightsError with the message
        scorers = Scorers()
        if "niqe" in wanted:
            from pi2sb_lab.niqe import load_model
            scorers = scorers._replace(niqe=load_model(args.niqe_model))
        if "fid" in wanted:
            from pi2sb_lab.fid import load_features
            scorers = scorers._replace(fid_net=load_features(args.fid_features))
    except (MissingWeightsError, ValueError, ImportError) as err:
        parser.error(str(err))
    return [m for m in METRICS if m in wanted], scorers


def check_same_evaluation(out: Path, restored: Path) -> None:
    """``out`` may hold an earlier evaluation of the same folder (a rerun replaces it), never another's."""
    from pi2sb_lab.preflight import PreflightError

    try:
        earlier = json.loads((out / "metrics.json").read_text()).get("restored")
    except (OSError, ValueError, AttributeError):
        return
    if earlier is not None and Path(earlier).resolve() != restored.resolve():
        raise PreflightError(f"--out {str(out)!r} holds the metrics of another folder ({earlier}); choose another "
                             "--out")


def _stem(name: str) -> str:
    return str(Path(name).with_suffix(""))


def _features(files: ImageFiles, indices, net, device, batch_size: int, desc: str):
    """FID features of ``files[indices]`` (this rank's share), unreadable files skipped;
    (features, the indices they belong to, skipped names)."""
    from pi2sb_lab.fid import extract

    feats, used, skipped, pending = [], [], [], []

    def flush():
        if pending:
            feats.append(extract(net, torch.stack(pending), device))
            pending.clear()

    for i in tqdm(indices, desc=desc, unit="img", disable=not dist.is_main()):
        try:
            image = files.read(i)
        except ImageError:
            skipped.append(files.names[i])
            continue
        if pending and image.shape != pending[0].shape:
            flush()
        pending.append(image)
        used.append(i)
        if len(pending) == batch_size:
            flush()
    flush()
    return (torch.cat(feats).numpy() if feats else np.zeros((0, 0))), used, skipped


def _in_order(gathered: list[RankPart], side: str) -> np.ndarray:
    """The features of every rank on ``side`` ("ours" or "ref"), rows in the order of the file listing (so a
    sharded run sums the covariance in the same order as one process, and gives the same FID to the last digit)."""
    index = [i for part in gathered for i in getattr(part.fid, f"{side}_idx")]
    feats = np.concatenate([getattr(part.fid, side) for part in gathered if getattr(part.fid, side).size])
    return feats[np.argsort(index, kind="stable")]


def evaluate(args, wanted: list[str], scorers: Scorers, device: torch.device) -> dict:
    rank, world = dist.rank(), dist.world_size()
    restored = ImageFiles(args.restored, size=None)
    hq = ImageFiles(args.hq, size=None) if args.hq else None
    by_stem = {_stem(n): i for i, n in enumerate(hq.names)} if hq else {}
    lpips = LPIPSMetric(args.lpips_net, device) if "lpips" in wanted else None
    from pi2sb_lab.niqe import niqe

    mine = list(range(rank, len(restored), world))  # this rank's share of the restored images
    per_image, skipped, unmatched, pairs = {}, [], [], []
    for i in tqdm(mine, desc="per-image metrics", unit="img", disable=not dist.is_main()):
        name = restored.names[i]
        j = by_stem.get(_stem(name))
        if hq is not None and j is None:
            unmatched.append(name)
            continue
        try:
            image = restored.read(i)
            ref = hq.read(j) if hq is not None else None
        except ImageError as err:
            skipped.append(f"{name}: {err}")
            continue
        if ref is not None and ref.shape != image.shape:
            raise ValueError(f"{name}: restored {tuple(image.shape)} and HQ {tuple(ref.shape)} differ in size")
        row = {}
        if ref is not None:
            pairs.append(j)
            x, y = to_float(image[None]).double(), to_float(ref[None]).double()
            if "psnr" in wanted:
                row["psnr"] = float(psnr(x, y)[0])
            if "ssim" in wanted:
                row["ssim"] = float(ssim(x, y)[0])
            if "lpips" in wanted:
                row["lpips"] = float(lpips(x.float(), y.float())[0])
        if "niqe" in wanted:
            row["niqe"] = niqe(image, scorers.niqe)
        per_image[name] = row

    fid_parts = None
    if "fid" in wanted:
        reference = hq if hq is not None else ImageFiles(args.fid_ref, size=None)
        position = {n: i for i, n in enumerate(restored.names)}
        ours = [position[n] for n in per_image]  # the restored images that were scored
        ref_idx = pairs if hq is not None else list(range(rank, len(reference), world))
        f_ours, ours, _ = _features(restored, ours, scorers.fid_net, device, args.batch_size, "FID features")
        f_ref, ref_idx, ref_skipped = _features(reference, ref_idx, scorers.fid_net, device, args.batch_size,
                                                "FID reference")
        skipped += [f"{n} (FID reference): unreadable" for n in ref_skipped]
        fid_parts = FidPart(ours, f_ours, ref_idx, f_ref)  # indices: rank 0 puts the rows in the listing's order

    gathered = dist.all_gather_object(RankPart(per_image, skipped, unmatched, fid_parts))
    if not dist.is_main():
        return {}
    per_image = dict(sorted({k: v for part in gathered for k, v in part.per_image.items()}.items()))
    skipped = sorted(s for part in gathered for s in part.skipped)
    unmatched = sorted(s for part in gathered for s in part.unmatched)
    if not per_image:
        raise ValueError(f"no restored image could be scored in {args.restored} "
                         f"({len(unmatched)} without an HQ partner, {len(skipped)} unreadable)")
    means = {m: float(np.mean([row[m] for row in per_image.values()])) for m in wanted if m != "fid"}
    if "fid" in wanted:
        means["fid"] = frechet_distance(_in_order(gathered, "ours"), _in_order(gathered, "ref"))
    return {"label": args.label or args.restored.name, "restored": str(args.restored),
            "hq": None if args.hq is None else str(args.hq),
            "fid_reference": None if "fid" not in wanted else str(args.hq or args.fid_ref),
            "images": len(per_image), "metrics": {m: means[m] for m in wanted},
            "settings": {"lpips_net": args.lpips_net, "fid_features": args.fid_features,
                         "niqe_model": str(args.niqe_model or "default"), "world_size": dist.world_size()},
            "skipped": skipped, "unmatched": unmatched, "per_image": per_image}


def markdown(result: dict) -> str:
    cols = list(result["metrics"])
    head = "| set | images | " + " | ".join(ARROWS[c] for c in cols) + " |"
    rule = "|---|---:|" + "---:|" * len(cols)
    fmt = {"psnr": "{:.3f}", "ssim": "{:.4f}", "lpips": "{:.4f}", "fid": "{:.3f}", "niqe": "{:.4f}"}
    row = f"| {result['label']} | {result['images']} | " + \
        " | ".join(fmt[c].format(result["metrics"][c]) for c in cols) + " |"
    notes = []
    if result["skipped"]:
        notes.append(f"{len(result['skipped'])} unreadable file(s) skipped: " + "; ".join(result["skipped"]))
    if result["unmatched"]:
        notes.append(f"{len(result['unmatched'])} restored file(s) without an HQ partner: "
                     + ", ".join(result["unmatched"]))
    return "\n".join([head, rule, row] + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    wanted, scorers = check_args(parser, args)
    out = args.out  # checked: a folder that can be made
    device = dist.init(args.device)
    try:
        result = evaluate(args, wanted, scorers, device)
        if dist.is_main():
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
            (out / "metrics.md").write_text(markdown(result))
            print(markdown(result), end="")
            print(f"wrote {out / 'metrics.md'} and {out / 'metrics.json'}")
    except (ValueError, ImageError) as err:
        if dist.is_main():
            print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 1
    finally:
        dist.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
