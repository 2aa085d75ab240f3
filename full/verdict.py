"""P-I2SB's verdict on real images: Table 3's (a) Vanilla, (c) + lq + da, (d) Noise and (e) Cat, on the
held-out photographs and the LFW faces, several seeds, paired within a seed, on the CPU.

    python full/verdict.py --sets photos --total-steps 2000 --nfe 1 10 --out runs/verdict       # docs/claims.md
    python full/verdict.py --sets faces --total-steps 500 --nfe 1 10 --out runs/verdict-faces  # 2,000: overfit
    python full/verdict.py --sets faces --variants a-vanilla e-cat --total-steps 50     # a quick look

For each set (``photos``: 32² crops and tiles of pi2sb_lab.data.photos; ``faces``: LFW
at 32²; both degraded by the 32² preset ``face32``), one test set
(full/make_testset.py), then per seed and variant: full/train.py (one process, the
"tiny" U-Net, the same steps, batch and lr for every cell; trained on the stochastic bridge, see
full/real_photos.py for why not the OT-ODE path), full/restore.py (sampled along the OT-ODE path,
--nfe (one table per value), the true eq. 19 vectors for the da variants) and full/evaluate.py (PSNR, SSIM).
Noise-I2SB is restored without a prior (x̂ as it is: P-I2SB's eq. 18 decodes it with a
DDIM denoiser, which this budget does not train). Each seed's cells share the seed
(network initialisation, data order, degradation draws), so a difference between two
variants within a seed is a paired one. Writes OUT/verdict.md and OUT/verdict.json;
finished cells are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `full` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from full.real_photos import run  # noqa: E402
from pi2sb_lab.data.photos import write_face_set, write_photo_set  # noqa: E402

VARIANTS = ("a-vanilla", "c-lq-da", "d-noise", "e-cat")
SETS = {  # name → (full/train.py overrides, description)
    "photos": (["degradation=face32"], "32² photo tiles"),
    "faces": (["degradation=face32"], "32² LFW faces"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/verdict"))
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--total-steps", "--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--nfe", type=int, nargs="+", default=[10],
                        help="sampling steps; several give one table each from the same trained cells")
    return parser


def testset(out: Path, name: str, log: Path) -> Path:
    """The set's training folder and its degraded test set (written once)."""
    data = out / "data" / name
    if not (data / "manifest.json").is_file():
        if name == "photos":
            write_photo_set(data, tile=32, train_crops=4000)
        else:
            write_face_set(data, size=32)
    test = out / "testset" / name
    if not (test / "manifest.json").is_file():
        run(["full/make_testset.py", str(data / "test"), str(test), "--size", "32", "--preset", "face32"], log)
    return data


def cell(out: Path, set_name: str, data: Path, variant: str, seed: int, args, log: Path) -> list[dict]:
    """Train one cell (once) and score it at every NFE asked for; one record per NFE."""
    where = out / "cells" / set_name / variant / f"seed{seed}"
    start = time.perf_counter()
    run_dir = where / "run"
    overrides = [f"data={data / 'train'}", "image_size=32", "net=tiny", f"batch_size={args.batch_size}",
                 f"lr={args.lr}", f"total_steps={args.total_steps}", "lr_warmup_steps=20", "ot_ode=false",
                 f"seed={seed}", f"checkpoint_every={args.total_steps}", f"image_every={args.total_steps}",
                 f"log_every={max(1, args.total_steps // 10)}", "progress=false", "num_workers=0",
                 f"run_dir={run_dir}",
                 *SETS[set_name][0]]
    trained = False
    records = []
    for nfe in args.nfe:
        scored = where / f"metrics-nfe{nfe}.json"
        if scored.is_file() and json.loads(scored.read_text()).get("steps") == args.total_steps:
            records.append(json.loads(scored.read_text()))
            continue
        if not trained and not (run_dir / f"checkpoint-{args.total_steps:09d}.pt").is_file():
            run(["full/train.py", variant, *overrides] + (["--resume"] if (run_dir / "config.json").exists() else []),
                log)
        trained = True
        test = out / "testset" / set_name
        restored = where / f"restored-nfe{nfe}"
        run(["full/restore.py", str(run_dir), str(test / "lq"), str(restored), "--nfe", str(nfe), "--ot-ode",
             "--params", str(test / "params"), "--seed", str(seed), "--batch-size", "32"], log)
        run(["full/evaluate.py", str(restored), "--hq", str(test / "hq"), "--metrics", "psnr,ssim",
             "--out", str(where / f"metrics-nfe{nfe}"), "--label", f"{set_name} {variant} seed {seed} NFE {nfe}"],
            log)
        result = json.loads((where / f"metrics-nfe{nfe}" / "metrics.json").read_text())
        record = {"set": set_name, "variant": variant, "seed": seed, "steps": args.total_steps, "nfe": nfe,
                  "psnr": result["metrics"]["psnr"], "ssim": result["metrics"]["ssim"],
                  "wall_s": time.perf_counter() - start}  # the first NFE's record carries the training time
        start = time.perf_counter()
        scored.write_text(json.dumps(record) + "\n")
        records.append(record)
    return records


def lq_scores(out: Path, set_name: str, log: Path) -> dict:
    test = out / "testset" / set_name
    where = out / "lq_metrics" / set_name
    if not (where / "metrics.json").is_file():
        run(["full/evaluate.py", str(test / "lq"), "--hq", str(test / "hq"), "--metrics", "psnr,ssim",
             "--out", str(where)], log)
    return json.loads((where / "metrics.json").read_text())["metrics"]


def table(records: list[dict], args, nfe: int, out: Path, log: Path) -> list[str]:
    """The markdown table of one NFE: mean over seeds, and each variant's paired difference to (a)."""
    lines = [f"{args.total_steps} steps × batch {args.batch_size} per cell (tiny U-Net, 32², lr {args.lr}, OT-ODE "
             f"sampling, **NFE {nfe}**), seeds {args.seeds}; Δ = variant − (a) Vanilla within a seed, mean ± sd "
             "over seeds.",
             "", "| set | variant | PSNR↑ | SSIM↑ | ΔPSNR vs (a) | ΔSSIM vs (a) | seeds better (PSNR) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
    for set_name in args.sets:
        lq = lq_scores(out, set_name, log)
        lines.append(f"| {set_name} | LQ input | {lq['psnr']:.2f} | {lq['ssim']:.4f} | | | |")
        base = {r["seed"]: r for r in records if r["set"] == set_name and r["variant"] == "a-vanilla"}
        for variant in args.variants:
            rows = [r for r in records if r["set"] == set_name and r["variant"] == variant]
            psnr, ssim = (statistics.mean(r[k] for r in rows) for k in ("psnr", "ssim"))
            cells = f"| {set_name} | {variant} | {psnr:.2f} ± {sd([r['psnr'] for r in rows]):.2f} | {ssim:.4f} |"
            if variant != "a-vanilla" and base:
                dp = [r["psnr"] - base[r["seed"]]["psnr"] for r in rows if r["seed"] in base]
                ds = [r["ssim"] - base[r["seed"]]["ssim"] for r in rows if r["seed"] in base]
                cells += (f" {statistics.mean(dp):+.2f} ± {sd(dp):.2f} | {statistics.mean(ds):+.4f} ± {sd(ds):.4f} |"
                          f" {sum(d > 0 for d in dp)}/{len(dp)} |")
            else:
                cells += " | | |"
            lines.append(cells)
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "verdict.log"
    wall = time.perf_counter()
    records = []
    data = {set_name: testset(out, set_name, log) for set_name in args.sets}
    for seed in args.seeds:  # seed by seed: an interrupted verdict still has whole pairs
        for set_name in args.sets:
            for variant in args.variants:
                for record in cell(out, set_name, data[set_name], variant, seed, args, log):
                    records.append(record)
                    print(json.dumps(record), flush=True)
    lines = []
    for nfe in args.nfe:
        lines += table([r for r in records if r["nfe"] == nfe], args, nfe, out, log) + [""]
    load = os.getloadavg()
    cell_s = sum(r["wall_s"] for r in records)
    lines += [f"Wall time {(time.perf_counter() - wall) / 60:.1f} min this invocation ({cell_s / 60:.1f} min in "
              f"the cells, summed over invocations); {os.cpu_count()} cores shared, load average at the end "
              f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}."]
    (out / "verdict.md").write_text("\n".join(lines) + "\n")
    (out / "verdict.json").write_text(json.dumps(records, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
