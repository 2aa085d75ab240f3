"""`make photos`: the full tier on real photographs, end to end on the CPU, with no download.

    python full/real_photos.py                     # what `make photos` runs: build, train, restore, score, draw
    python full/real_photos.py --total-steps 300 --out runs/photos-short

1. pi2sb_lab.data.photos writes 32² training crops of 14 photographs that ship with
   scikit-image and scikit-learn, and tiles of 4 held-out ones (chelsea, coffee, camera,
   china); full/make_testset.py degrades the tiles once with the 32² preset ``face32``
   (``--tile 64 --preset photo64`` for 64² tiles: 4× the compute per step).
2. full/train.py trains the bridge (P-I2SB's e-cat by default) under
   ``torchrun --nproc_per_node 2`` on the CPU.
3. full/restore.py restores the held-out LQ tiles along the OT-ODE path (``--ot-ode``). The bridge
   itself is trained on the stochastic bridge (``ot_ode=false``): trained on the OT-ODE's
   deterministic path, a model that also sees y (Cat's second half, the lq condition) reads
   x0 = (x_t − w_t·y)/(1 − w_t) off its input at every t < 1 and learns nothing for t = 1,
   where restoration starts (measured: loss at t = 1 0.0687 against 0.0712 for predicting 0,
   at t = 0.9 0.0068; +0.2 dB over the LQ after 800 steps).
4. A supervised regression U-Net of the same architecture, steps, batch, lr and EMA,
   trained on the same on-the-fly pairs (y → x, MSE; the perception–distortion
   baseline), restores the same tiles.
5. full/evaluate.py scores LQ, bridge and regression against the HQ tiles: PSNR, SSIM,
   NIQE (a pristine model fitted here on the training crops, 16² patches: the usual
   96² patches do not fit a 64² tile; MATLAB's model is for 96² patches of large
   photographs) and, when their weights are in the torch hub cache, LPIPS and FID.
6. OUT/photos.md (the table, the commands, the wall times) and OUT/photos.png (rows of
   LQ | bridge | regression | HQ).

Every step is a subprocess running the same command a user would type (printed as it
runs), so OUT holds an ordinary run folder, test set and restored folders. Finished
steps are skipped on a rerun (their outputs exist).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `full` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from full.common import degrade_fn_of  # noqa: E402
from full.config import load_config  # noqa: E402
from pi2sb_lab.checkpoint import checkpoint_path  # noqa: E402
from pi2sb_lab.data.images import ImageFiles, ImageFolder, save_png, to_float  # noqa: E402
from pi2sb_lab.data.photos import write_photo_set  # noqa: E402
from pi2sb_lab.nets import seeded  # noqa: E402
from pi2sb_lab.nets.unet import UNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/photos"), help="output folder (default runs/photos)")
    parser.add_argument("--variant", default="e-cat", help="full/configs name of the bridge (default e-cat)")
    parser.add_argument("--total-steps", "--steps", type=int, default=4000,
                        help="training steps of bridge and regression (4000)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--net", default="tiny", help="U-Net config (default tiny: 0.67M parameters)")
    parser.add_argument("--tile", type=int, default=32, help="tile side (default 32; 64 with --preset photo64)")
    parser.add_argument("--crops", type=int, default=4000, help="training crops written (default 4000)")
    parser.add_argument("--nfe", type=int, default=1, help="sampler steps of the restoration (default 1)")
    parser.add_argument("--sde", action="store_true", help="sample the SDE (default: the OT-ODE path, deterministic)")
    parser.add_argument("--nproc", type=int, default=2, help="torchrun processes for train/restore (default 2)")
    parser.add_argument("--preset", default="face32", help="eq. 19 preset of training and test set (face32, "
                        "the 32² preset; photo64 for 64² tiles)")
    parser.add_argument("--extra", nargs="*", default=[], metavar="key=value",
                        help="further full/train.py overrides for the bridge")
    return parser


def run(cmd: list[str], log: Path, nproc: int = 1) -> float:
    """Run ``cmd`` (a python script; under torchrun when ``nproc`` > 1), output to ``log`` and the console."""
    if nproc > 1:
        cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd]
    else:
        cmd = [PYTHON, *cmd]
    print("$", shlex.join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    start = time.perf_counter()
    with open(log, "a") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {shlex.join(cmd)}; see {log}")
    return time.perf_counter() - start


def train_regression(cfg, threads: int, device: str):
    """The supervised baseline: the same U-Net on y → x (t = 0, no condition), same steps, batch, lr and EMA as the
    bridge, through the same training loop. Returns its EMA model."""
    from pi2sb_lab.train import SupervisedObjective, training_loop

    torch.set_num_threads(threads)
    net = seeded(lambda: UNet.from_config(cfg.net, in_channels=3, out_channels=3, image_size=cfg.image_size),
                 cfg.seed)
    degrade_fn = degrade_fn_of(cfg)

    def loss(model, x, y, _params):
        return torch.nn.functional.mse_loss(model(y, torch.zeros(len(y), device=y.device)), x)

    result = training_loop(model=net, dataset=ImageFolder(cfg.data, cfg.image_size), pair_fn=degrade_fn,
                           objective=SupervisedObjective(loss, "regression"), total_steps=cfg.total_steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, lr_warmup_steps=cfg.lr_warmup_steps,
                           ema_decay=cfg.ema_decay, ema_rampup=cfg.ema_rampup, seed=cfg.seed, device=device,
                           log_every=100, progress="regression")
    return result.ema


@torch.no_grad()
def apply_regression(model, lq: Path, out: Path, device: str) -> None:
    files = ImageFiles(lq, None)
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(files.names):
        y = to_float(files.read(i)[None]).to(device)
        save_png(model(y, torch.zeros(1, device=device)).clamp(-1, 1)[0], out / f"{Path(name).with_suffix('')}.png")


def fit_niqe(train: Path, path: Path, limit: int = 100) -> Path:
    """A NIQE pristine model from the first ``limit`` training crops (16² patches; training photographs only)."""
    from pi2sb_lab.niqe import fit_model, save_model

    files = ImageFiles(train, None)
    return save_model(fit_model((files.read(i) for i in range(min(limit, len(files)))), patch_size=16), path)


def picture(folders: list[Path], names: list[str], path: Path, min_tile: int = 128) -> None:
    """Rows of the columns ``folders`` (LQ | bridge | regression | HQ), one row per tile name; tiles are
    enlarged by whole pixels (nearest neighbour, so no pixel is invented) to at least ``min_tile`` px:
    32² tiles side by side are too small to judge blur and noise on a screen."""
    from torchvision.utils import make_grid, save_image

    tiles = torch.stack([to_float(ImageFiles(f, None).read(ImageFiles(f, None).names.index(n)))
                         for n in names for f in folders])
    factor = max(1, -(-min_tile // tiles.shape[-1]))
    tiles = tiles.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    save_image((make_grid(tiles, nrow=len(folders), padding=2 * factor, pad_value=1.0) + 1) / 2, path)


@dataclass
class Run:
    """One `make photos` run: its folders, its log, and what the report lists (wall times, commands)."""

    args: argparse.Namespace
    out: Path
    times: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = self.out / "photos.log"
        self.data, self.testset = self.out / "data", self.out / "testset"  # photo set; make_testset's output
        self.bridge, self.restored = self.out / "bridge", self.out / "restored"  # full/train.py run; its restore
        self.regression = self.out / "regression"  # the regression U-Net's restored tiles


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    r = Run(args, args.out.resolve())
    r.out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    manifest, niqe_file = make_data(r)
    cfg = train_bridge(r)
    restore_bridge(r)
    fit_and_apply_regression(r, cfg)
    metrics, rows = score(r, niqe_file)
    names = sorted(ImageFiles(r.testset / "hq", None).names)
    shown = [n for n in names if n.endswith("r1c1.png")][:4] + [n for n in names if n.endswith("r0c2.png")][:2]
    picture([r.testset / "lq", r.restored, r.regression, r.testset / "hq"], shown, r.out / "photos.png")
    r.times["total"] = time.perf_counter() - wall
    lines = report(r, manifest, metrics.split(","), rows)
    (r.out / "photos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"picture: {r.out / 'photos.png'} (rows: LQ | bridge | regression | HQ)")
    return 0


def make_data(r: Run) -> tuple[dict, Path]:
    """Step 1: the photo set, its degraded test set and the NIQE model (each skipped when it exists)."""
    start = time.perf_counter()
    if not (r.data / "manifest.json").is_file():
        write_photo_set(r.data, tile=r.args.tile, train_crops=r.args.crops)
    manifest = json.loads((r.data / "manifest.json").read_text())
    if not (r.testset / "manifest.json").is_file():
        run(["full/make_testset.py", str(r.data / "test"), str(r.testset), "--size", str(r.args.tile),
             "--preset", r.args.preset], r.log)
    niqe_file = r.out / "niqe_photos.npz"
    if not niqe_file.is_file():
        fit_niqe(r.data / "train", niqe_file)
    r.times["data"] = time.perf_counter() - start
    return manifest, niqe_file


def train_bridge(r: Run):
    """Step 2: full/train.py under torchrun (resumed when a run was cut short); returns its resolved config."""
    args = r.args
    overrides = [f"data={r.data / 'train'}", f"image_size={args.tile}", f"net={args.net}",
                 f"degradation={args.preset}", f"batch_size={args.batch_size}", f"lr={args.lr}",
                 f"total_steps={args.total_steps}", "lr_warmup_steps=50",
                 f"checkpoint_every={max(1, args.total_steps // 3)}", f"image_every={max(1, args.total_steps // 3)}",
                 f"log_every={max(1, args.total_steps // 30)}",
                 "ot_ode=false", "progress=false", f"run_dir={r.bridge}", *args.extra]
    train_cmd = ["full/train.py", args.variant, *overrides]
    r.commands.append(shlex.join(["torchrun", f"--nproc_per_node={args.nproc}", *train_cmd]))
    if not checkpoint_path(r.bridge, args.total_steps).is_file():
        r.times["train bridge"] = run(train_cmd + (["--resume"] if (r.bridge / "config.json").exists() else []),
                                      r.log, args.nproc)
    return load_config(args.variant, overrides)


def restore_bridge(r: Run) -> None:
    """Step 3: full/restore.py on the held-out LQ tiles (skipped when a complete restore.json exists)."""
    args = r.args
    restore_cmd = ["full/restore.py", str(r.bridge), str(r.testset / "lq"), str(r.restored), "--nfe", str(args.nfe),
                   "--params", str(r.testset / "params"), *([] if args.sde else ["--ot-ode"])]
    r.commands.append(shlex.join(["torchrun", f"--nproc_per_node={args.nproc}", *restore_cmd]))
    record = r.restored / "restore.json"
    if not record.is_file() or not json.loads(record.read_text())["complete"]:
        r.times["restore"] = run(restore_cmd, r.log, args.nproc)


def fit_and_apply_regression(r: Run, cfg) -> None:
    """Step 4: the regression U-Net, trained in-process and applied to the LQ tiles (skipped when done)."""
    if (r.regression / "done").is_file():
        return
    start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = train_regression(cfg, threads=1, device=device)  # 2 threads on a loaded machine: 47 s/step
    apply_regression(model, r.testset / "lq", r.regression, device)
    (r.regression / "done").write_text("")
    r.times["train + apply regression"] = time.perf_counter() - start


def score(r: Run, niqe_file: Path) -> tuple[str, dict]:
    """Step 5: full/evaluate.py on LQ, bridge and regression against the HQ tiles; (metrics, rows by label)."""
    from pi2sb_lab.metrics import lpips_backbone_file

    metrics = "psnr,ssim,niqe" + (",lpips" if lpips_backbone_file("alex").is_file() else "")
    rows = {}
    start = time.perf_counter()
    for label, folder in (("LQ (input)", r.testset / "lq"), (f"bridge ({r.args.variant}, NFE {r.args.nfe})",
                                                              r.restored), ("regression U-Net", r.regression)):
        scored = r.out / "metrics" / folder.name
        run(["full/evaluate.py", str(folder), "--hq", str(r.testset / "hq"), "--metrics", metrics,
             "--niqe-model", str(niqe_file), "--out", str(scored), "--label", label], r.log)
        rows[label] = json.loads((scored / "metrics.json").read_text())["metrics"]
    r.times["evaluate"] = time.perf_counter() - start
    return metrics, rows


def report(r: Run, manifest: dict, cols: list[str], rows: dict) -> list[str]:
    """Step 6: photos.md's lines: the table, the gains over the LQ input, the commands and the wall times."""
    args = r.args
    arrows = {"psnr": "PSNR↑", "ssim": "SSIM↑", "niqe": "NIQE↓", "lpips": "LPIPS↓"}
    lines = [f"Held-out photographs {', '.join(manifest['test_photos'])}: {manifest['test_tiles']} tiles of "
             f"{args.tile}², degraded once by eq. 19 ({args.preset}); trained on {manifest['train_crops']} crops of "
             f"{', '.join(manifest['train_photos'])}.", "",
             "| | " + " | ".join(arrows[c] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, m in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{m[c]:.4g}" for c in cols) + " |")
    lq = rows["LQ (input)"]
    for label in list(rows)[1:]:
        lines.append("")
        lines.append(f"{label}: PSNR {rows[label]['psnr'] - lq['psnr']:+.2f} dB, SSIM "
                     f"{rows[label]['ssim'] - lq['ssim']:+.4f} over the LQ input.")
    load = os.getloadavg()
    lines += ["", "Commands (beside the data set and the regression, which run in-process):", "",
              *[f"    {c}" for c in r.commands], "",
              "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in r.times.items() if v > 1) +
              f"; {os.cpu_count()} cores, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
