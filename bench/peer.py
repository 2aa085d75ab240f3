"""The project against a peer's own code, side by side in one process: NVlabs/I2SB (github.com/NVlabs/I2SB).

Every figure is a ratio project / peer of medians (< 1: the project is faster), measured on the
same inputs in one process, the two sides interleaved call by call (the order flips every round),
so a busy spell on a shared machine hits both. The 1-minute load average is printed with every
figure: on a loaded machine the ratios stay meaningful but the seconds do not.

    git clone https://github.com/NVlabs/I2SB /tmp/i2sb     # any checkout of it
    python bench/peer.py /tmp/i2sb                         # every part, 2 threads, batch 4, 64² (~15 min idle)
    python bench/peer.py /tmp/i2sb --parts step,adamw,ema --repeats 3    # a few parts

Parts (``--parts``):
  step     one bare training step (forward, MSE, backward, the same fused AdamW) and a no-grad forward:
           the project's ``adm512`` U-Net against guided_diffusion's UNetModel built by I2SB's
           ``create_model`` with the same hyper-parameters (same topology and parameter count);
  adamw    one optimizer step on the adm512 parameters: the optimizer ``training_loop`` builds
           (``train.build_optimizer``) against the one I2SB's ``build_optimizer_sched`` builds;
  ema      one EMA update of the adm512 weights: ``train.EMA`` against I2SB's torch_ema;
  loop     ``training_loop`` per step against I2SB's ``Runner.train`` loop body (its statements in
           order, calling I2SB's own loader, ``sample_batch``, ``q_sample``, ``compute_label``,
           optimizer, torch_ema and log line) on one network (the project's U-Net behind ADM's
           ``(x, timesteps)`` interface): the loop's callback runs the peer's step, so they alternate;
  sampler  ``sampler.sample`` against I2SB's ``Runner.ddpm_sampling``, once with one tiny shared
           network (a 1×1 convolution: what is left is each sampler's own overhead), NFE 10/100/999,
           and once with the real networks (adm512 against ADM), NFE 10/100.

I2SB's import needs packages the project does not use. Installed (their code runs in the timed
parts): torch-ema (I2SB's EMA) and prefetch_generator (I2SB's data loader iterates through it).
Replaced by empty modules when absent, since no timed statement touches them: wandb and
torchmetrics (logging and validation accuracy), ipdb (a debugger hook), easydict (checkpoint
options) and requests (weight downloads). I2SB's loader runs with ``num_workers=0``, as the
project's loop does here (its default of 4 workers would crowd two cores).
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import logging
import os
import pickle
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pi2sb_lab import train
from pi2sb_lab.cli import int_at_least
from pi2sb_lab.nets.unet import CONFIGS, UNet
from pi2sb_lab.parameterization import EpsParam
from pi2sb_lab.sampler import sample
from pi2sb_lab.schedule import SymmetricSchedule

PARTS = ("step", "adamw", "ema", "loop", "sampler")
STUBBED_WHEN_ABSENT = ("wandb", "torchmetrics", "ipdb", "easydict", "requests")
RESULTS: list[tuple] = []   # (measure, project median, peer median, wall ratio, cpu ratio, load low, load high)


# --------------------------------------------------------------------------- the peer

def import_peer(path: Path) -> SimpleNamespace:
    """I2SB's modules from the checkout at ``path``; empty stand-ins for the untimed absent packages."""
    if not (path / "i2sb" / "runner.py").is_file():
        sys.exit(f"{path} is not an NVlabs/I2SB checkout (no i2sb/runner.py)")
    for needed in ("torch_ema", "prefetch_generator"):
        try:
            __import__(needed)
        except ImportError:
            sys.exit(f"I2SB's timed code needs {needed}: pip install {needed.replace('_', '-')}")
    stubbed = []
    for name in STUBBED_WHEN_ABSENT:
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.set_trace = lambda *a, **k: None   # ipdb
            stub.EasyDict = dict                     # easydict
            sys.modules[name] = stub
            stubbed.append(name)
    sys.path.insert(0, str(path))
    from guided_diffusion import script_util
    from i2sb import ckpt_util, diffusion, network, runner, util
    from torch_ema import ExponentialMovingAverage
    return SimpleNamespace(create_model=script_util.create_model, ckpt_util=ckpt_util, diffusion=diffusion,
                           network=network, runner=runner, util=util, EMA=ExponentialMovingAverage,
                           stubbed=stubbed, path=path)


def peer_options(batch: int) -> SimpleNamespace:
    """The options of I2SB's train.py that the timed code reads (its defaults; one CPU process)."""
    return SimpleNamespace(interval=1000, beta_max=0.3, t0=1e-4, T=1.0, device="cpu", use_fp16=False,
                           cond_x1=False, add_x1_noise=False, ema=0.99, load=None, ot_ode=False, lr=5e-5,
                           l2_norm=0.0, lr_gamma=0.99, lr_step=1000, corrupt="sr4x-pool", microbatch=batch,
                           batch_size=batch, global_size=1, clip_denoise=False, num_itr=10**9)


def adm_kwargs() -> dict:
    """create_model's arguments for the adm512 topology (image_size 512 gives channel_mult
    (0.5, 1, 1, 2, 2, 4, 4); plain strided/nearest up- and downsampling, as adm512 has)."""
    c = CONFIGS["adm512"]
    return dict(image_size=512, num_channels=c["model_channels"], num_res_blocks=c["num_res_blocks"],
                channel_mult="", learn_sigma=False, class_cond=False, use_checkpoint=False,
                attention_resolutions="32,16,8", num_heads=4, num_head_channels=64, num_heads_upsample=-1,
                use_scale_shift_norm=True, dropout=0.0, resblock_updown=False, use_fp16=False,
                use_new_attention_order=False)


def peer_runner(P, opt, backbone: nn.Module, log) -> object:
    """An I2SB Runner around ``backbone(x, timesteps)``: its own __init__ (diffusion, noise levels,
    Image256Net, torch_ema), with Image256Net reading a stand-in network description and no
    pretrained weights, and then ``backbone`` put in the network's place."""
    with tempfile.TemporaryDirectory() as folder:
        small = dict(adm_kwargs(), image_size=64, num_channels=32, num_head_channels=32)  # quick to build
        (Path(folder) / P.ckpt_util.I2SB_IMG256_UNCOND_PKL).write_bytes(pickle.dumps(small))
        original = P.runner.Image256Net
        P.runner.Image256Net = functools.partial(original, pretrained_adm=False, ckpt_dir=folder)
        try:
            runner = P.runner.Runner(opt, log, save_opt=False)
        finally:
            P.runner.Image256Net = original
    runner.net.diffusion_model = backbone
    runner.ema = P.EMA(runner.net.parameters(), decay=opt.ema)
    return runner


class BehindADMInterface(nn.Module):
    """The project's U-Net called as ADM is: I2SB passes t·1000 (its noise levels), the U-Net takes t."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x, timesteps):
        return self.unet(x, timesteps / 1000.0)


class TinyNet(nn.Module):
    """The network both samplers share in the overhead measure: one 1×1 convolution, time ignored."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x, t, cond=None):
        return self.conv(x)


# --------------------------------------------------------------------------- timing

def load() -> float:
    return os.getloadavg()[0]


class Clock:
    """Wall seconds and CPU seconds (all this process' threads) of one call: on a machine shared with
    other jobs the CPU seconds move less, since waiting for a core is not counted."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    @property
    def both(self) -> tuple[float, float]:
        return self.wall, self.cpu


def interleaved(project, peer, repeats: int, warmup: int = 1) -> tuple[list, list, list[float]]:
    """(wall, cpu) seconds of ``project()`` and ``peer()`` over ``repeats`` rounds, the order flipped
    each round (warm-up rounds untimed), and the load average after each round."""
    for _ in range(warmup):
        project(), peer()
    times = {"project": [], "peer": []}
    loads = []
    for r in range(repeats):
        order = [("project", project), ("peer", peer)]
        for name, fn in order[::-1] if r % 2 else order:
            with Clock() as clock:
                fn()
            times[name].append(clock.both)
        loads.append(load())
    return times["project"], times["peer"], loads


def report(measure: str, project: list, peer: list, loads: list[float], per: int = 1) -> None:
    """One row: median wall seconds of each side (per ``per`` images), the ratio of the wall medians,
    the ratio of the CPU-second medians, and the load average over the measure."""
    p, q = (statistics.median(w for w, _ in side) / per for side in (project, peer))
    cpu_ratio = statistics.median(c for _, c in project) / statistics.median(c for _, c in peer)
    RESULTS.append((measure, p, q, p / q, cpu_ratio, min(loads), max(loads)))
    print(f"  {measure:<44} {_seconds(p)}  {_seconds(q)}  {p / q:6.3f}  {cpu_ratio:6.3f}   "
          f"{min(loads):.2f}-{max(loads):.2f}  (n={len(project)})", flush=True)


def _seconds(s: float) -> str:
    return f"{s * 1e3:10.2f} ms" if s < 1 else f"{s:10.3f} s "


def heading(title: str) -> None:
    print(f"\n== {title}\n  {'measure':<44} {'project wall':>13}  {'peer wall':>13}  {'ratio':>6}  {'cpu':>6}   load",
          flush=True)


# --------------------------------------------------------------------------- the parts

def part_step(P, args, x, target) -> None:
    """Bare step and forward: same code on both networks, which alone differ."""
    torch.manual_seed(0)
    ours = UNet.from_config("adm512")
    torch.manual_seed(0)
    theirs = P.create_model(**adm_kwargs())
    t = torch.rand(len(x), generator=torch.Generator().manual_seed(1))

    def stepper(net, time_scale):
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)   # the same (fast) step on both sides

        def step():
            opt.zero_grad(set_to_none=True)
            F.mse_loss(net(x, t * time_scale), target).backward()
            opt.step()
        return step

    heading(f"bare training step and forward, per image (project adm512 {sum(p.numel() for p in ours.parameters()):,} "
            f"parameters, peer ADM {sum(p.numel() for p in theirs.parameters()):,})")
    report("training step (fwd + bwd + fused AdamW)",
           *interleaved(stepper(ours, 1.0), stepper(theirs, 1000.0), args.repeats), per=len(x))
    with torch.no_grad():
        ours.eval(), theirs.eval()
        report("forward (no grad)", *interleaved(lambda: ours(x, t), lambda: theirs(x, t * 1000.0), args.repeats),
               per=len(x))


def _adm512_with_grads(x, target) -> nn.Module:
    torch.manual_seed(0)
    net = UNet.from_config("adm512")
    F.mse_loss(net(x, torch.full((len(x),), 0.5)), target).backward()
    return net


def part_adamw(P, args, opt, log, x, target) -> None:
    """One optimizer step each on its own copy of the same weights and gradients."""
    ours_net = _adm512_with_grads(x, target)
    theirs_net = copy.deepcopy(ours_net)
    for mine, copied in zip(ours_net.parameters(), theirs_net.parameters()):
        copied.grad = mine.grad.clone()   # deepcopy leaves the gradients behind
    ours, kind = train.build_optimizer([p for p in ours_net.parameters()], lr=opt.lr, betas=(0.9, 0.999),
                                       weight_decay=0.0, device=torch.device("cpu"))
    theirs, _ = P.runner.build_optimizer_sched(opt, theirs_net, log)
    heading(f"AdamW step on the adm512 parameters (project: {kind}; peer: torch's default for CPU tensors)")
    report("AdamW step", *interleaved(ours.step, theirs.step, args.repeats))


def part_ema(P, args, opt, x, target) -> None:
    net = _adm512_with_grads(x, target)
    ours = train.EMA(net, opt.ema)
    theirs = P.EMA(net.parameters(), decay=opt.ema)
    heading("EMA update of the adm512 weights (project train.EMA, peer torch_ema)")
    report("EMA update", *interleaved(lambda: ours.update(net), theirs.update, args.repeats))


def part_loop(P, args, opt, log, data) -> None:
    """``training_loop`` steps and I2SB loop-body steps on copies of one network, alternating."""
    torch.manual_seed(0)
    ours_net = UNet.from_config("adm512")
    runner = peer_runner(P, opt, BehindADMInterface(copy.deepcopy(ours_net)), log)
    optimizer, sched = P.runner.build_optimizer_sched(opt, runner.net, log)
    loader = P.util.setup_loader(torch.utils.data.TensorDataset(data, torch.zeros(len(data))), opt.microbatch,
                                 num_workers=0)
    runner.net.train()

    def degrade(x):   # both sides' corruption: 4× average pool, nearest upsampling back
        return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4.0, mode="nearest")

    def peer_step():   # Runner.train's loop body, one micro-batch, in its order
        optimizer.zero_grad()
        x0, x1, mask, y, cond = runner.sample_batch(opt, loader, degrade)
        step = torch.randint(0, opt.interval, (x0.shape[0],))
        xt = runner.diffusion.q_sample(step, x0, x1, ot_ode=opt.ot_ode)
        label = runner.compute_label(step, x0, xt)
        loss = F.mse_loss(runner.net(xt, step, cond=cond), label)
        loss.backward()
        optimizer.step()
        runner.ema.update()
        sched.step()
        log.info(f"train_it | lr:{optimizer.param_groups[0]['lr']:.2e} | loss:{loss.item():+.4f}")

    # A step of training_loop runs from one pair_fn call to the next; the callback (which runs the
    # peer's step, before or after a timed gap of ours) is taken out.
    marks: list[tuple[str, np.ndarray]] = []
    peer_times, loads = [], []

    def now() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    def pair_fn(x, generator):
        marks.append(("pair", now()))
        return x, degrade(x), None

    def callback(state):
        marks.append(("in", now()))
        with Clock() as clock:
            peer_step()
        if 1 < state.step <= steps:   # step 1 is each side's warm-up (optimizer state, allocations)
            peer_times.append(clock.both)
            loads.append(load())
        marks.append(("out", now()))

    steps = args.repeats + 1
    train.training_loop(model=ours_net, dataset=data, pair_fn=pair_fn, schedule=SymmetricSchedule(),
                                 total_steps=steps + 1, batch_size=args.batch, lr=opt.lr, ema_decay=opt.ema,
                                 device="cpu", progress=False, callback=callback, callback_every=1, seed=0)
    pairs = [t for k, t in marks if k == "pair"]
    ins = [t for k, t in marks if k == "in"]
    outs = [t for k, t in marks if k == "out"]
    ours_times = [tuple((ins[k] - pairs[k]) + (pairs[k + 1] - outs[k])) for k in range(1, steps)]
    heading(f"training_loop against I2SB's loop body, same network (project optimizer: "
            f"{_optimizer_kind()}), per image")
    report("training_loop step vs I2SB loop body", ours_times, peer_times, loads, per=args.batch)


def _optimizer_kind() -> str:
    return train.build_optimizer([nn.Parameter(torch.zeros(1))], lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0,
                                 device=torch.device("cpu"))[1]


def part_sampler(P, args, opt, log) -> None:
    schedule = SymmetricSchedule()
    x1 = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(2)) * 2 - 1
    conv = nn.Conv2d(3, 3, 1)
    tiny_ours = EpsParam(TinyNet(conv), schedule).eval()
    tiny_theirs = peer_runner(P, opt, TinyNet(conv), log)
    heading("sampler overhead: one tiny shared network (a 1×1 convolution), per call of the whole batch")
    for nfe in args.nfe:
        report(f"sampler, tiny network, NFE {nfe}",
               *interleaved(lambda: sample(tiny_ours, x1, schedule, nfe=nfe, grid="uniform"),
                            lambda: tiny_theirs.ddpm_sampling(opt, x1, nfe=nfe, verbose=False),
                            args.sampler_repeats))
    if not args.real_nfe:
        return
    torch.manual_seed(0)
    real_ours = EpsParam(UNet.from_config("adm512"), schedule).eval()
    torch.manual_seed(0)
    real_theirs = peer_runner(P, opt, P.create_model(**adm_kwargs()), log)
    heading("sampler with the real networks (project adm512, peer ADM), per image")
    for nfe in args.real_nfe:
        report(f"sampler, real networks, NFE {nfe}",
               *interleaved(lambda: sample(real_ours, x1, schedule, nfe=nfe, grid="uniform"),
                            lambda: real_theirs.ddpm_sampling(opt, x1, nfe=nfe, verbose=False),
                            args.real_repeats, warmup=0), per=args.batch)


# --------------------------------------------------------------------------- main

def _numbers(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench/peer.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("peer", type=Path, help="path of an NVlabs/I2SB checkout")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)} (default all)")
    ap.add_argument("--threads", type=int_at_least(1), default=2, help="torch threads (default 2)")
    ap.add_argument("--batch", type=int_at_least(1), default=4, help="images per step (default 4)")
    ap.add_argument("--size", type=int_at_least(64), default=64, help="image side, a multiple of 64 (default 64)")
    ap.add_argument("--repeats", type=int_at_least(1), default=5, help="timed rounds of each measure (default 5)")
    ap.add_argument("--sampler-repeats", type=int_at_least(1), default=7, help="rounds with the tiny network (default 7)")
    ap.add_argument("--real-repeats", type=int_at_least(1), default=3, help="rounds with the real networks (default 3)")
    ap.add_argument("--nfe", type=_numbers, default=[10, 100, 999], help="tiny-network NFEs (default 10,100,999)")
    ap.add_argument("--real-nfe", type=_numbers, default=[10, 100], help="real-network NFEs ('' for none)")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or set(parts) - set(PARTS):
        ap.error(f"--parts must name some of {','.join(PARTS)}; got {args.parts!r}")
    if args.size % 64 or args.size < 64:
        ap.error(f"--size must be a positive multiple of 64 (the U-Nets downsample 64×); got {args.size}")

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("peer")
    P = import_peer(args.peer.resolve())
    opt = peer_options(args.batch)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads of {os.cpu_count()} CPUs, float32, "
          f"batch {args.batch}, {args.size}²; project {Path(train.__file__).parent}; peer {P.path}; stubbed (absent, untimed): {P.stubbed or 'none'}; "
          f"load {load():.2f}\nratio = project / peer, medians: < 1 means the project is faster")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen) * 2 - 1
    target = torch.randn(x.shape, generator=gen)
    data = torch.rand(8 * args.batch, 3, args.size, args.size, generator=gen) * 2 - 1
    for part in parts:
        if part == "step":
            part_step(P, args, x, target)
        elif part == "adamw":
            part_adamw(P, args, opt, log, x, target)
        elif part == "ema":
            part_ema(P, args, opt, x, target)
        elif part == "loop":
            part_loop(P, args, opt, log, data)
        else:
            part_sampler(P, args, opt, log)
        gc.collect()
    print("\n== summary (median wall per image or per call; ratios project / peer of wall and CPU seconds)")
    for measure, p, q, ratio, cpu_ratio, lo, hi in RESULTS:
        print(f"  {measure:<44} {_seconds(p)}  {_seconds(q)}  {ratio:6.3f}  {cpu_ratio:6.3f}   load {lo:.2f}-{hi:.2f}")


if __name__ == "__main__":
    main()
