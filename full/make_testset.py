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

from pi2sb_lab.data.images import ImageError, ImageFiles, sample_seed, save_png, to_float
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hq", type=Path, help="folder or .zip of HQ faces (PNG/JPEG)")
    parser.add_argument("out", type=Path, help="output folder (hq/, lq/, params/, manifest.json)")
    parser.add_argument("--seed", type=int, default=TEST_SEED, help=f"the set's seed (default {TEST_SEED})")
    parser.add_argument("--size", type=int, default=512, help="side of the square images (default 512)")
    parser.add_argument("--preset", default="ffhq512", choices=sorted(PRESETS), help="eq. 19 preset (default ffhq512)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    if args.size < 8:
        parser.error(f"--size must be >= 8; got {args.size}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1; got {args.limit}")
    if not args.hq.exists():
        parser.error(f"HQ folder or zip {str(args.hq)!r} does not exist")
    if args.out.resolve() == args.hq.resolve() or args.hq.resolve() in args.out.resolve().parents:
        parser.error(f"output folder {str(args.out)!r} must not be inside the HQ input {str(args.hq)!r}")
    try:
        files = ImageFiles(args.hq, args.size)
    except ValueError as err:
        parser.error(str(err))
    names = files.names[: args.limit]
    if not names:
        parser.error(f"no PNG/JPEG images in {str(args.hq)!r}")

    config = dataclasses.replace(PRESETS[args.preset], flip_prob=0.0)  # a flip is augmentation, not degradation
    skipped = []
    for i, name in enumerate(tqdm(names, desc="make_testset", unit="img")):
        try:
            hq = files.read(i)
        except ImageError as err:
            skipped.append(name)
            tqdm.write(f"skipped: {err}")
            continue
        seed = sample_seed(args.seed, name)
        generator = torch.Generator().manual_seed(seed)
        _, lq, params = degrade(to_float(hq[None]), config, generator=generator)
        stem = out_stem(name)
        for sub, image in (("hq", hq), ("lq", lq[0])):
            (args.out / sub / stem).parent.mkdir(parents=True, exist_ok=True)
            save_png(image, args.out / sub / f"{stem}.png")
        record = params_record(name, seed, args.preset, params)
        (args.out / "params" / stem).parent.mkdir(parents=True, exist_ok=True)
        (args.out / "params" / f"{stem}.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    manifest = {"source": str(args.hq), "seed": args.seed, "preset": args.preset, "size": args.size,
                "flip_prob": 0.0, "images": len(names) - len(skipped), "skipped": skipped}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(names) - len(skipped)} HQ/LQ pairs to {args.out} (seed {args.seed}); "
          f"{len(skipped)} unreadable file(s) skipped{': ' + ', '.join(skipped) if skipped else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
