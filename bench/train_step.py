"""Throughput of one P-I2SB training step at 512² (adm512), and its model FLOPs utilisation on a GPU.

A step as full/train.py runs it: uint8 batch → eq. 19 degradation on the device →
Cat-I2SB hashing with the lq+da conditions → bridge loss (bf16 autocast on CUDA) →
backward → AdamW. The network's FLOPs per image (forward + backward) are counted by
torch.utils.flop_counter on the meta device (no compute); MFU = achieved FLOP/s over the
device's dense bf16 peak (a small table of known GPUs; --peak-tflops for others).
Degradation time is reported separately. Nothing here is estimated: every rate printed
was timed in this run, on the device named.

    python bench/train_step.py                       # adm512 at 512², batch 2 (CPU: ~2-5 min on one core)
    python bench/train_step.py --batch-size 16 --steps 10   # on a GPU
    python bench/train_step.py --quick               # tiny U-Net at 32²: checks that it runs
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from pi2sb_lab.data.images import to_float
from pi2sb_lab.degrade import degrade
from pi2sb_lab.objective import BridgeObjective
from pi2sb_lab.recipe import make_recipe

# Dense bf16 peak, TFLOP/s, by a substring of torch.cuda.get_device_name() (vendor datasheets, no sparsity).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100": 756.0,
                    "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "RTX 4090": 165.0}


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default="adm512", help="UNet config (default adm512)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--batch-size", type=int, default=2, help="images per step (default 2)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step (default 2)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-bf16", action="store_true", help="float32 on CUDA too")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in the U-Net")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    parser.add_argument("--quick", action="store_true", help="tiny U-Net at 32², batch 2, 1 step")
    args = parser.parse_args()
    if args.quick:
        args.net, args.size, args.batch_size, args.steps = "tiny", 32, 2, 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(1)
    bf16 = device.type == "cuda" and not args.no_bf16
    recipe = make_recipe(strategy="cat", conditioning="lq+da", net=args.net, channels=3, image_size=args.size,
                         use_checkpoint=args.checkpointing)
    strategy, conditioning = recipe.strategy, recipe.conditioning
    with torch.device("meta"):  # FLOPs of forward + backward for one image, counted without computing
        meta = recipe.backbone()
        x = torch.zeros(1, 6, args.size, args.size)
        cond = {"image": torch.zeros(1, 3, args.size, args.size), "degradation": torch.zeros(1, 9)}
        with FlopCounterMode(display=False) as counter:
            meta(x, torch.ones(1), cond).float().square().mean().backward()
    flops_per_image = counter.get_total_flops()

    objective = BridgeObjective(recipe.bridge)
    model = objective.prepare(recipe.backbone(seed=0)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen, gen_t = torch.Generator(device=device).manual_seed(0), torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (args.batch_size, 3, args.size, args.size), dtype=torch.uint8, generator=
                          torch.Generator().manual_seed(0))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> tuple[float, float]:
        sync()
        t0 = time.perf_counter()
        x, y, params = degrade(to_float(batch.to(device)), "ffhq512", generator=gen)
        x_hat, y_hat = strategy.encode(x, y)
        cond = conditioning.build(y, params.as_vector().to(device))
        sync()
        t1 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = objective.loss(model, x_hat, y_hat, cond, generator=gen, time_generator=gen_t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        return t1 - t0, time.perf_counter() - t1

    step()  # warm-up: allocations, cuDNN autotuning, codec import
    times = [step() for _ in range(args.steps)]
    t_degrade = sum(t[0] for t in times) / len(times)
    t_model = sum(t[1] for t in times) / len(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{args.net} ({params_m:.1f}M parameters) at {args.size}², batch {args.batch_size}, "
          f"{'bf16 autocast' if bf16 else 'float32'}, on {name}; mean of {args.steps} step(s) after a warm-up")
    print(f"  model FLOPs (fwd+bwd, counted)  : {flops_per_image / 1e9:10.1f} GFLOP per image")
    print(f"  degradation + hashing          : {t_degrade:10.3f} s per step ({args.batch_size / t_degrade:8.2f} images/s)")
    print(f"  forward + backward + AdamW     : {t_model:10.3f} s per step ({args.batch_size / t_model:8.2f} images/s)")
    print(f"  whole step                     : {t_degrade + t_model:10.3f} s per step "
          f"({args.batch_size / (t_degrade + t_model):8.2f} images/s)")
    achieved = flops_per_image * args.batch_size / t_model / 1e12
    print(f"  achieved (model part)          : {achieved:10.3f} TFLOP/s")
    peak = args.peak_tflops or (peak_tflops(name) if device.type == "cuda" else None)
    if peak:
        print(f"  MFU (bf16 peak {peak:.0f} TFLOP/s)    : {100 * achieved / peak:10.1f} %")
    else:
        print("  MFU                            : not computed (no bf16 peak known for this device; --peak-tflops)")


if __name__ == "__main__":
    main()
