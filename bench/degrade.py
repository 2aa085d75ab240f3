"""Throughput of pi2sb_lab.degrade (P-I2SB eq. 19, ffhq512 preset) against an OpenCV pipeline.

The OpenCV side is the per-image, numpy/cv2 way GFPGAN's FFHQDegradationDataset
builds the same degradation (Table 4 parameters): flip, 41×41 iso/aniso Gaussian
via cv2.filter2D, cv2.resize down by r and back (INTER_LINEAR), Gaussian noise,
cv2.imencode/imdecode JPEG, gray, 8-bit rounding. Both run on the same inputs, in
this process, on ONE CPU thread; the ratio is ours / OpenCV (> 1: ours is faster).
CPU rates count CPU seconds by default (``--clock cpu``: per core, and steady on a
machine other jobs share, where waiting for a core is not counted); ``--clock wall``
counts wall seconds (an idle machine gives the same figures both ways).

    python bench/degrade.py            # default run (well under two minutes)
    python bench/degrade.py --quick    # a few images, to check that it runs
    python bench/degrade.py --baseline /tmp/old   # also time the pi2sb_lab/ of another checkout,
                                                  # in the same interleaved passes (before/after)
    python bench/degrade.py --outputs F.pt   # no timing: save the reference degradations to F.pt,
                                             # or, if F.pt exists, count the values that moved

The reference degradations (``--outputs``) are the 1,000 MNIST test digits (mnist32 preset,
batches of 100, generator seed 0), 48 ffhq512 photo-like images at 512² (batches of 16) and 16
images at 128² with ``gray_prob=0.5, gray_clean=True`` (x and y). To compare two versions, save
with one (e.g. ``PYTHONPATH=/tmp/old python bench/degrade.py --outputs old.pt``) and compare
with the other.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import cv2
import numpy as np
import torch

from pi2sb_lab.cli import int_at_least
from pi2sb_lab.degrade import PRESETS, degrade


def photo_like(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, 3, size, size) in [-1, 1]: smooth shapes, a colour tint and grain (no dataset needed)."""
    g = torch.Generator().manual_seed(seed)

    def field(c: int, step: int) -> torch.Tensor:
        f = torch.rand(n, c, size // step, size // step, generator=g) * 2 - 1
        return torch.nn.functional.interpolate(f, size=(size, size), mode="bicubic", align_corners=False)

    x = 0.8 * field(1, 16) + 0.2 * field(3, 32) + 0.05 * (torch.rand(n, 3, size, size, generator=g) * 2 - 1)
    return x.clamp(-1, 1)


# --------------------------------------------------------------------------- the OpenCV reference


def cv_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    half = size // 2
    rows, cols = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    u = cols * math.cos(theta) + rows * math.sin(theta)
    v = -cols * math.sin(theta) + rows * math.cos(theta)
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).astype(np.float32)


def cv_degrade(img: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """One HWC BGR float32 image in [0, 1] through eq. 19 the GFPGAN way; returns the degraded image."""
    h, w = img.shape[:2]
    if rng.uniform() < cfg.flip_prob:
        img = cv2.flip(img, 1)
    s_lo, s_hi = cfg.sigma_range
    if rng.uniform() < cfg.aniso_prob:
        kernel = cv_gaussian_kernel(cfg.kernel_size, rng.uniform(s_lo, s_hi), rng.uniform(s_lo, s_hi),
                                    rng.uniform(0, math.pi))
    else:
        s = rng.uniform(s_lo, s_hi)
        kernel = cv_gaussian_kernel(cfg.kernel_size, s, s, 0.0)
    lq = cv2.filter2D(img, -1, kernel)
    r = rng.uniform(*cfg.scale_range)
    lq = cv2.resize(lq, (max(1, int(w // r)), max(1, int(h // r))), interpolation=cv2.INTER_LINEAR)
    lq = np.clip(lq + rng.standard_normal(lq.shape).astype(np.float32) * rng.uniform(*cfg.noise_range) / 255, 0, 1)
    q = int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1))
    _, buf = cv2.imencode(".jpg", (lq * 255).round().astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
    lq = cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32) / 255
    lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < cfg.gray_prob:
        lq = np.tile(cv2.cvtColor(lq, cv2.COLOR_BGR2GRAY)[:, :, None], (1, 1, 3))
    return np.clip((lq * 255).round(), 0, 255) / 255


# --------------------------------------------------------------------------- two versions


def baseline_degrade(root: str):
    """``degrade`` of the ``pi2sb_lab/`` package in the checkout ``root``, imported under another name
    (``pi2sb_baseline``) next to this one, so both run in one process."""
    import importlib
    import importlib.util
    import sys

    init = os.path.join(root, "pi2sb_lab", "__init__.py")
    if not os.path.isfile(init):
        raise SystemExit(f"bench/degrade.py: error: --baseline: no pi2sb_lab/__init__.py under {root}")
    spec = importlib.util.spec_from_file_location("pi2sb_baseline", init,
                                                  submodule_search_locations=[os.path.dirname(init)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["pi2sb_baseline"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("pi2sb_baseline.degrade").degrade


def reference_outputs() -> dict[str, torch.Tensor]:
    """The degradations ``--outputs`` saves or compares (see the module docstring)."""
    from pi2sb_lab.data.mnist import load_mnist
    from pi2sb_lab.degrade import DegradationConfig

    def run(x, config, batch):
        g = torch.Generator().manual_seed(0)
        return torch.cat([degrade(b, config, generator=g).y for b in x.split(batch)])

    out = {"mnist32 test digits": run(load_mnist("test").images[:1000], "mnist32", 100),
           "ffhq512 at 512²": run(photo_like(48, 512, seed=0), "ffhq512", 16)}
    gray = degrade(photo_like(16, 128, seed=3), DegradationConfig(gray_prob=0.5, gray_clean=True),
                   generator=torch.Generator().manual_seed(0))
    out["gray 128² (x)"], out["gray 128² (y)"] = gray.x, gray.y
    return out


def save_or_compare(path: str) -> None:
    outputs = reference_outputs()
    if not os.path.exists(path):
        torch.save(outputs, path)
        print(f"saved {', '.join(outputs)} to {path}")
        return
    saved = torch.load(path)
    for name, new in outputs.items():
        moved = (new != saved[name])
        levels = (new - saved[name]).abs().max().item() * 127.5  # [-1, 1] → 0–255 levels
        print(f"  {name}: {int(moved.sum()):,} of {new.numel():,} values moved, largest change {levels:.2f} levels")


# --------------------------------------------------------------------------- timing


def best_rates(runs: dict, n_images: int, repeats: int, sync=lambda: None, clock=time.perf_counter) -> dict[str, float]:
    """Images per second (of ``clock``) of each pipeline's fastest pass. Passes alternate between
    the pipelines, so a busy spell on a shared machine cannot favour one of them."""
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync()
            start = clock()
            run()
            sync()
            best[name] = min(best[name], clock() - start)
    return {name: n_images / seconds for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/degrade.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int_at_least(1), default=64, help="images per timed pass (default 64)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=16,
                        help="batch size for pi2sb_lab.degrade (default 16)")
    # the synthetic photos are built from a 32×32-pixel colour field: smaller sides have none
    parser.add_argument("--size", type=int_at_least(32, high=4096, what=" (pixels)"), default=512,
                        help="image side in pixels, 32 to 4096 (default 512)")
    parser.add_argument("--repeats", type=int_at_least(1), default=3,
                        help="timed passes per pipeline, alternating; the best counts (default 3)")
    parser.add_argument("--gpu-images", type=int_at_least(1), default=512,
                        help="images per timed GPU pass (default 512)")
    parser.add_argument("--gpu-batch-size", type=int_at_least(1), default=64, help="batch size on the GPU (default 64)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="CPU pipelines timed in CPU seconds (default) or wall seconds")
    parser.add_argument("--quick", action="store_true", help="tiny run: 4 images, batch 2, one pass")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time pi2sb_lab.degrade of the checkout DIR, interleaved in the same passes")
    parser.add_argument("--outputs", metavar="PATH",
                        help="no timing: save the reference degradations to PATH, or compare with it if it exists")
    args = parser.parse_args(argv)
    if args.outputs:
        torch.set_num_threads(1)
        save_or_compare(args.outputs)
        return
    if args.quick:
        args.images, args.batch_size, args.repeats, args.gpu_images, args.gpu_batch_size = 4, 2, 1, 8, 4

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cfg = PRESETS["ffhq512"]
    x = photo_like(args.images, args.size, seed=0)
    # OpenCV's inputs as a data loader would hold them: HWC BGR float32 in [0, 1].
    x_cv = [np.ascontiguousarray(((im.permute(1, 2, 0).numpy() + 1) / 2)[:, :, ::-1]) for im in x]
    batches = x.split(args.batch_size)

    def ours(device: str = "cpu", degrade=degrade) -> None:
        g = torch.Generator(device=device).manual_seed(0)
        for b in batches:
            degrade(b.to(device), "ffhq512", generator=g)

    def opencv() -> None:
        rng = np.random.default_rng(0)
        for im in x_cv:
            cv_degrade(im, rng, cfg)

    degrade(x[:1], cfg, generator=torch.Generator())  # warm-up: codec import, FFT plans
    cv_degrade(x_cv[0], np.random.default_rng(0), cfg)

    print(f"P-I2SB eq. 19, ffhq512 preset, {args.images} images {args.size}x{args.size}x3, "
          f"batch {args.batch_size}, best of {args.repeats}, 1 CPU thread, {args.clock} seconds, "
          f"load average {os.getloadavg()[0]:.2f}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    runs = {"ours": ours, "opencv": opencv}
    if args.baseline:
        degrade_baseline = baseline_degrade(args.baseline)
        runs["baseline"] = lambda: ours(degrade=degrade_baseline)
        runs["baseline"]()  # warm-up
    rates = best_rates(runs, args.images, args.repeats, clock=clock)
    rate_ours, rate_cv = rates["ours"], rates["opencv"]
    print(f"  pi2sb_lab.degrade (CPU): {rate_ours:8.2f} images/s")
    print(f"  OpenCV / GFPGAN-style  : {rate_cv:8.2f} images/s")
    if args.baseline:
        print(f"  baseline {args.baseline} (CPU): {rates['baseline']:8.2f} images/s")
        print(f"  ratio baseline / OpenCV: {rates['baseline'] / rate_cv:8.2f}")
        print(f"  ratio ours / baseline  : {rate_ours / rates['baseline']:8.2f}")
    print(f"  ratio ours / OpenCV    : {rate_ours / rate_cv:8.2f}   (load average {os.getloadavg()[0]:.2f})")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        x_gpu = photo_like(args.gpu_images, args.size, seed=1).cuda()
        for codec, label in (("auto", "JPEG by nvjpeg on the GPU, batched"), ("cpu", "JPEG by libjpeg on the CPU")):
            def gpu(codec=codec) -> None:
                g = torch.Generator(device="cuda").manual_seed(0)
                for b in x_gpu.split(args.gpu_batch_size):
                    degrade(b, cfg, generator=g, jpeg_codec=codec)
            gpu()  # warm-up: kernels, FFT plans, codec handles
            rate = best_rates({"gpu": gpu}, args.gpu_images, args.repeats, torch.cuda.synchronize)["gpu"]
            print(f"  pi2sb_lab.degrade (GPU, {name}, batch {args.gpu_batch_size}, {label}): {rate:8.2f} images/s")
    else:
        print("  GPU: none here (the GPU path was not measured)")

if __name__ == "__main__":
    main()
