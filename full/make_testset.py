"""CelebA-Test-style synthetic test set: degrade a folder of HQ faces once, with a fixed seed.

P-I2SB §5 tests on 3,000 CelebA-HQ faces at 512² degraded by eq. 19 with the
training parameters (Table 4). This writes, for every readable image of HQ_DIR
(a folder or a zip, PNG/JPEG, resized to --size):

    OUT/hq/NAME.png      the HQ face at --size (what evaluate.py compares against)
    OUT/lq/NAME.png      its eq. 19 degradation (the input of restore.py)
    OUT/params/NAME.json the draw of eq. 19: σ's, θ, r, δ, q, gray, and the normalized vector
                         that the ``da`` condition reads (restore.py --params OUT/params)
    OUT/manifest.json    source, seed, preset, size, counts, and the files that were unreadable

Each image's draw comes from its own seed (the run's --seed and the file's name), so
the set does not depend on the order, on other files, or on batch sizes, and a rerun
writes byte-identical files. No flip (it is training augmentation only).

    python full/make_testset.py /data/celeba_hq_3000 runs/celeba-test
    python full/make_testset.py HQ_DIR OUT --seed 2025 --size 512 --limit 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pi2sb_lab.cli import path_arg
from pi2sb_lab.data.images import ImageError, sample_seed, save_png, to_float
from pi2sb_lab.preflight import argparse_errors, check_apart, check_images, check_out_dir, output_stems
from pi2sb_lab.degrade import DEGRADATION_PARAM_NAMES, PRESETS, degrade

TEST_SEED = 2025


def params_record(name: str, seed: int, preset: str, params) -> dict:
    """One image's eq. 19 draw as plain JSON values (floats exact: the float32 tensors' own values)."""
    record = {"name": name, "seed": seed, "preset": preset}
    for field in ("aniso", "sigma_major", "sigma_minor", "theta", "scale", "noise", "jpeg_quality", "gray"):
        value = getattr(params, field)[0].item()
        record[field] = value
    record["vector"] = dict(zip(DEGRADATION_PARAM_NAMES, params.as_vector()[0].tolist()))
    return record


def out_stem(name: str) -> str:
    """``sub/a.jpg`` → ``sub/a`` (outputs keep the folder layout; all are PNG)."""
    return str(Path(name).with_suffix(""))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    files, names, stems = check_args(parser, args)
    config = dataclasses.replace(PRESETS[args.preset], flip_prob=0.0)  # a flip is augmentation, not degradation
    skipped = []
    for i, name in enumerate(tqdm(names, desc="make_testset", unit="img")):
        try:
            hq = files.read(i)
        except ImageError as err:
            skipped.append(name)
            tqdm.write(f"skipped: {err}")
            continue
        write_pair(args, config, name, stems[i], hq)
    if len(skipped) == len(names):  # nothing was written: no manifest of an empty set
        print(f"make_testset.py: error: none of the {len(names)} image(s) in {args.hq} could be decoded "
              f"(the first: {skipped[0]}); nothing written", file=sys.stderr)
        return 1
    converted = {n: files.notes[n] for n in names if n in files.notes}
    manifest = {"source": str(args.hq), "seed": args.seed, "preset": args.preset, "size": args.size,
                "flip_prob": 0.0, "images": len(names) - len(skipped), "skipped": skipped, "converted": converted}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(names) - len(skipped)} HQ/LQ pairs to {args.out} (seed {args.seed}); "
          f"{len(skipped)} unreadable file(s) skipped{': ' + ', '.join(skipped) if skipped else ''}"
          + (f"; {len(converted)} converted on decoding (listed in manifest.json: {next(iter(converted.values()))}"
             f"{' …' if len(converted) > 1 else ''})" if converted else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hq", type=path_arg, help="folder or .zip of HQ faces (PNG/JPEG)")
    parser.add_argument("out", type=path_arg, help="output folder (hq/, lq/, params/, manifest.json)")
    parser.add_argument("--seed", type=int, default=TEST_SEED, help=f"the set's seed (default {TEST_SEED})")
    parser.add_argument("--size", type=int, default=512, help="side of the square images (default 512)")
    parser.add_argument("--preset", default="ffhq512", choices=sorted(PRESETS), help="eq. 19 preset (default ffhq512)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """Every argument and path, before anything is written: (the HQ files, the names used, their output stems)."""
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.size < 8:
        parser.error(f"--size must be >= 8; got {args.size}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1; got {args.limit}")
    with argparse_errors(parser):  # every path checked before anything is written
        check_out_dir(args.out, "OUT")
        files = check_images(args.hq, args.size, "HQ")
        check_apart({"HQ": args.hq}, args.out, "OUT")
        names = files.names[: args.limit]
        stems = output_stems(files, "HQ")[: args.limit]
        if (args.out / "manifest.json").exists():
            parser.error(f"OUT {str(args.out)!r} already holds a test set (manifest.json); choose another folder "
                         "(a rerun with the same seed would write the same files)")
    return files, names, stems


def write_pair(args, config, name: str, stem: str, hq: torch.Tensor) -> None:
    """Degrade one HQ image from its own seed (eq. 19) and write hq/STEM.png, lq/STEM.png, params/STEM.json."""
    seed = sample_seed(args.seed, name)
    generator = torch.Generator().manual_seed(seed)
    _, lq, params = degrade(to_float(hq[None]), config, generator=generator)
    for sub, image in (("hq", hq), ("lq", lq[0])):
        (args.out / sub / stem).parent.mkdir(parents=True, exist_ok=True)
        save_png(image, args.out / sub / f"{stem}.png")
    record = params_record(name, seed, args.preset, params)
    (args.out / "params" / stem).parent.mkdir(parents=True, exist_ok=True)
    (args.out / "params" / f"{stem}.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
