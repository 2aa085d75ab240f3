"""Seconds per 512² face restored (P-I2SB Alg. 2) at several NFE, with the adm512 network of full/.

Cat-I2SB with the lq+da conditions (the paper's headline model), random weights (speed
does not depend on them), float32 (bf16 autocast with --bf16 on CUDA), through
pi2sb_lab.pipeline.restore as full/restore.py calls it. Each NFE is timed once after a
warm-up at NFE 1; every figure printed was measured in this run, on the device named.

    python bench/restore.py                          # NFE 1 and 10 on the CPU (several minutes), 1, 10, 100 on a GPU
    python bench/restore.py --nfe 1 10 100 --batch-size 8
    python bench/restore.py --quick                  # tiny U-Net at 32²: checks that it runs
"""

from __future__ import annotations

import argparse
import time

import torch

from pi2sb_lab.recipe import make_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="adm512", help="UNet config (default adm512)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per sampler call (default 1)")
    parser.add_argument("--nfe", type=int, nargs="+", default=None,
                        help="NFE values to time (default: 1 10 100 on a GPU, 1 10 on the CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast of the network (CUDA)")
    parser.add_argument("--quick", action="store_true", help="tiny U-Net at 32², NFE 1 and 2")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.quick:
        args.net, args.size, args.nfe = "tiny", 32, [1, 2]
    if args.nfe is None:
        args.nfe = [1, 10, 100] if device.type == "cuda" else [1, 10]
    if device.type == "cpu":
        torch.set_num_threads(1)
    recipe = make_recipe(strategy="cat", conditioning="lq+da", net=args.net, channels=3, image_size=args.size)
    model = recipe.network(seed=0).to(device).eval()
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(args.batch_size, 3, args.size, args.size, generator=g) * 2 - 1).to(device)
    degradation = torch.rand(args.batch_size, 9, generator=g).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(nfe: int) -> float:
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"):
            recipe.restore(model, y, nfe=nfe, degradation=degradation, seed=0, clamp=(-1, 1))
        sync()
        return time.perf_counter() - start

    run(1)  # warm-up
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    print(f"{args.net} at {args.size}², Cat-I2SB lq+da, batch {args.batch_size}, "
          f"{'bf16 autocast' if args.bf16 and device.type == 'cuda' else 'float32'}, on {name}")
    for nfe in args.nfe:
        seconds = run(nfe)
        print(f"  NFE {nfe:4d}: {seconds / args.batch_size:9.3f} s per image ({seconds / nfe / args.batch_size:7.3f} s "
              "per network call per image)")


if __name__ == "__main__":
    main()
