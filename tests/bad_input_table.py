"""Every bad input we know of, run, with the message it now gets: the table of docs/bad_input.md.

    python tests/bad_input_table.py                        # print the table
    python tests/bad_input_table.py --write docs/bad_input.md

Each case calls the library, a command-line driver (in this process: its ``main(argv)``, which is what
``python toy/….py ARGS`` runs) or the notebook checker with one bad input, and records the error class
and its message (temporary paths shown as ``<tmp>``). ``tests/test_bad_input_table.py`` runs every case,
checks that each is refused with the expected error and a message that names the argument, and that the
committed table is current. ``issue`` marks the inputs listed in issue 8 or 17; the rest were added.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
INF, NAN = math.inf, math.nan


@dataclass(frozen=True)
class Case:
    area: str
    bad_input: str
    run: Callable[[Path], None]    # gets a fresh temporary folder
    expect: str                    # the error class name, or "exit 2" for a command line
    names: str                     # a regex the message must match: the argument's name (and value)
    issue: bool = False


def _driver(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem + "_driver", ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli(relative: str, args: list[str], *, chdir: bool = True) -> Callable[[Path], None]:
    """A command-line case: run the driver's main(args) in ``tmp`` (files FILE and EMPTY/ exist there)."""
    def run(tmp: Path) -> None:
        import os

        (tmp / "FILE").write_text("x")
        (tmp / "EMPTY").mkdir(exist_ok=True)
        old = os.getcwd()
        os.chdir(tmp if chdir else ROOT)
        try:
            if relative == "-m pi2sb_lab.notebook":
                from pi2sb_lab.notebook import main
            else:
                main = _driver(relative).main
            code = main(args)
        finally:
            os.chdir(old)
        raise SystemExit(code)
    return run


class _Tiny(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, width), nn.SiLU(), nn.Linear(width, 2))

    def forward(self, x, t, cond=None):
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x)], dim=1))


def _train(tmp: Path | None = None, **overrides):
    from pi2sb_lab.schedule import SymmetricSchedule
    from pi2sb_lab.train import training_loop

    settings = dict(model=_Tiny(), schedule=SymmetricSchedule(),
                    dataset=torch.randn(64, 2, generator=torch.Generator().manual_seed(0)),
                    pair_fn=lambda x, g: (x, x.flip(1), None), total_steps=2, batch_size=16, lr=1e-2,
                    log_every=1, progress=False)
    settings.update(overrides)
    return training_loop(**settings)


def _checkpoint(tmp: Path, data: bytes | None = None) -> Path:
    from pi2sb_lab.checkpoint import save_checkpoint

    path = save_checkpoint(tmp / "checkpoint-000000002.pt", model=nn.Linear(2, 3))
    if data is not None:
        path.write_bytes(data if data != b"half" else path.read_bytes()[:200])
    return path


def _resume_other_variant(tmp: Path) -> None:
    _train(run_dir=tmp / "run", fingerprint={"variant": "a-vanilla"})
    _train(run_dir=tmp / "run", resume=True, fingerprint={"variant": "res"}, total_steps=3)


def _resume_other_config(tmp: Path) -> None:
    from pi2sb_lab.train import NonFiniteLossError

    with contextlib.suppress(NonFiniteLossError):  # killed before its first checkpoint: config.json only
        _train(run_dir=tmp / "run", fingerprint={"variant": "e-cat"}, pair_fn=lambda x, g: (x, x * NAN, None))
    _train(run_dir=tmp / "run", resume=True, fingerprint={"variant": "d-noise"})


def _corrupt_mnist(tmp: Path) -> None:
    from pi2sb_lab.data.mnist import TORCHVISION_RAW_FILES, load_mnist

    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in TORCHVISION_RAW_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x09" + bytes(60))
    load_mnist("test", root=tmp)


def _image_folder(tmp: Path) -> None:
    from pi2sb_lab.data.images import ImageFolder

    (tmp / "notes.txt").write_text("no faces here")
    ImageFolder(tmp, size=16)


def _cases() -> list[Case]:
    from pi2sb_lab import bridge, hashing, sampler
    from pi2sb_lab.checkpoint import load_checkpoint
    from pi2sb_lab.data.mnist import load_mnist
    from pi2sb_lab.degrade import DegradationConfig, degrade, get_preset, sample_params
    from pi2sb_lab.experiments.mnist import MNISTConfig, check_variants
    from pi2sb_lab.metrics import frechet_distance, psnr
    from pi2sb_lab.notebook import check_param, check_parameters
    from pi2sb_lab.objective import bridge_loss
    from pi2sb_lab.parameterization import KarrasParam, parameterize
    from pi2sb_lab.pipeline import restore
    from pi2sb_lab.schedule import ConstantSchedule, SymmetricSchedule, time_grid

    S = SymmetricSchedule()
    net = lambda x, t, c=None: x  # noqa: E731
    x2, img = torch.zeros(3, 2), torch.zeros(2, 1, 8, 8)
    nb01, nb05 = ROOT / "notebooks" / "01_dirac_pair_bridge.py", ROOT / "notebooks" / "05_mnist_pseudo_hashing.py"
    i64 = torch.zeros(3, 2, dtype=torch.int64)
    C = Case
    return [
        # ------------------------------------------------------------------ schedules and time
        C("schedule", "`SymmetricSchedule(0.1, inf)`", lambda _: SymmetricSchedule(0.1, INF), "ValueError", "beta_max.*inf", True),
        C("schedule", "`SymmetricSchedule(nan, 0.3)`", lambda _: SymmetricSchedule(NAN, 0.3), "ValueError", "beta_min.*nan"),
        C("schedule", "`SymmetricSchedule('0.1', 0.3)`", lambda _: SymmetricSchedule("0.1", 0.3), "TypeError", "beta_min.*'0.1'"),
        C("schedule", "`ConstantSchedule(inf)`", lambda _: ConstantSchedule(INF), "ValueError", "beta.*inf", True),
        C("schedule", "`SymmetricSchedule().scaled(inf)`", lambda _: S.scaled(INF), "ValueError", "scale c.*inf", True),
        C("schedule", "`ConstantSchedule(1e300).scaled(1e10)` (overflows)", lambda _: ConstantSchedule(1e300).scaled(1e10), "ValueError", "scale c.*1e\\+10"),
        C("schedule", "`time_grid(10**12)` (terabytes)", lambda _: time_grid(10**12), "ValueError", "nfe.*1000000000000", True),
        C("schedule", "`time_grid(4.0)`", lambda _: time_grid(4.0), "TypeError", "nfe.*4.0"),
        C("schedule", "`time_grid(10, 'cosine')`", lambda _: time_grid(10, "cosine"), "ValueError", "grid.*'cosine'"),
        C("schedule", "`schedule.sigma2(nan)`", lambda _: S.sigma2(NAN), "ValueError", "t must lie in \\[0, 1\\].*NaN"),
        C("schedule", "`schedule.sigma2('half')`", lambda _: S.sigma2("half"), "TypeError", "t must be .*'half'"),
        # ------------------------------------------------------------------ bridge, sampler, loss
        C("sampler", "int64 tensor into `sample`", lambda _: sampler.sample(net, i64, S, nfe=2), "TypeError", "x1.*torch.int64", True),
        C("bridge", "int64 tensors into `sample_xt`", lambda _: bridge.sample_xt(S, i64, i64, 0.5), "TypeError", "x0.*torch.int64", True),
        C("bridge", "0-d data with `t` of shape (1,)", lambda _: bridge.sample_xt(S, torch.tensor(0.0), torch.tensor(1.0), torch.tensor([0.5])), "ValueError", "t must be a scalar.*\\(1,\\)", True),
        C("bridge", "`step_posterior` with t (3,), s (2,)", lambda _: bridge.step_posterior(S, x2, x2, torch.full((3,), 0.5), torch.full((2,), 0.2)), "ValueError", "s must be .*\\(3,\\).*\\(2,\\)", True),
        C("bridge", "`step_posterior` with s >= t", lambda _: bridge.step_posterior(S, x2, x2, 0.3, 0.5), "ValueError", "s < t"),
        C("bridge", "`sample_xt(..., generator=0)`", lambda _: bridge.sample_xt(S, x2, x2, 0.5, generator=0), "TypeError", "generator.*0"),
        C("sampler", "`sample(..., nfe=10**12)`", lambda _: sampler.sample(net, x2, S, nfe=10**12), "ValueError", "nfe.*1000000000000", True),
        C("sampler", "`sample(..., nfe=np.int64(4))` (accepted now)", lambda _: _accepted(sampler.sample(net, x2, S, nfe=__import__("numpy").int64(4))), "accepted", "", True),
        C("sampler", "`sample(None, ...)`", lambda _: sampler.sample(None, x2, S, nfe=2), "TypeError", "model must be"),
        C("sampler", "network output of another shape", lambda _: sampler.sample(lambda x, t, c=None: x[:, :1], x2, S, nfe=2), "ValueError", "network's output has shape \\(3, 1\\).*\\(3, 2\\)"),
        C("sampler", "`trajectory_stride=-1`", lambda _: sampler.sample(net, x2, S, nfe=2, trajectory_stride=-1), "ValueError", "trajectory_stride.*-1"),
        C("sampler", "`sample(..., eta=1.5)`", lambda _: sampler.sample(net, x2, S, nfe=2, eta=1.5), "ValueError", "eta.*1.5"),
        C("sampler", "`sample(..., eta=nan)`", lambda _: sampler.sample(net, x2, S, nfe=2, eta=NAN), "ValueError", "eta.*nan"),
        C("bridge", "an unknown bridge family name", lambda _: __import__("pi2sb_lab.families", fromlist=["x"]).make_family("ddbm"), "ValueError", "family.*'ddbm'"),
        C("objective", "`bridge_loss` with t (2,) for a batch of 3", lambda _: bridge_loss(net, x2, x2, S, t=torch.full((2,), 0.5)), "ValueError", "t must be .*\\(3,\\).*\\(2,\\)"),
        C("objective", "`bridge_loss(reduction='sum')`", lambda _: bridge_loss(net, x2, x2, S, reduction="sum"), "ValueError", "reduction.*'sum'"),
        C("objective", "`eps_target` at t = 0", lambda _: bridge.eps_target(S, x2, x2, 0.0), "ValueError", "t must be > 0"),
        C("parameterization", "`KarrasParam(var_x0=nan)`", lambda _: KarrasParam(net, S, var_x0=NAN), "ValueError", "var_x0.*nan", True),
        C("parameterization", "`KarrasParam(cov_x0x1=inf)`", lambda _: KarrasParam(net, S, cov_x0x1=INF), "ValueError", "cov_x0x1.*inf"),
        C("parameterization", "`parameterize('v', ...)`", lambda _: parameterize("v", net, S), "ValueError", "parameterization.*'v'"),
        C("pipeline", "`restore(..., chunk=0)`", lambda _: restore(net, x2, S, hashing.Origin(), nfe=2, chunk=0), "ValueError", "chunk.*0"),
        C("pipeline", "`restore(...)` with 1 seed for a batch of 3", lambda _: restore(net, x2, S, hashing.Origin(), nfe=2, seed=[7]), "ValueError", "one per sample needs 3 seeds.*got 1"),
        # ------------------------------------------------------------------ pseudo-hashing
        C("hashing", "`get_strategy(None)`", lambda _: hashing.get_strategy(None), "TypeError", "strategy name.*None", True),
        C("hashing", "`get_strategy('swap')`", lambda _: hashing.get_strategy("swap"), "ValueError", "'swap'.*origin, cat, res, noise"),
        C("hashing", "`Noise(inf)`", lambda _: hashing.Noise(INF), "ValueError", "noise level.*inf", True),
        C("hashing", "`Noise(-0.1)`", lambda _: hashing.Noise(-0.1), "ValueError", "noise level.*-0.1"),
        C("hashing", "`LQStdLevel(nan)`", lambda _: hashing.LQStdLevel(NAN), "ValueError", "LQStdLevel scale.*nan"),
        C("hashing", "`Noise(LQStdLevel())` on an empty batch (works now)", lambda _: _accepted(hashing.Noise(hashing.LQStdLevel()).encode(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4))), "accepted", "", True),
        C("hashing", "`EmpiricalPosteriorDenoiser(chunk=0)`", lambda _: hashing.EmpiricalPosteriorDenoiser(x2, chunk=0), "ValueError", "chunk.*0", True),
        C("hashing", "denoiser points with NaN", lambda _: hashing.EmpiricalPosteriorDenoiser(x2 * NAN), "ValueError", "points must be finite"),
        C("hashing", "denoiser sigma NaN", lambda _: hashing.EmpiricalPosteriorDenoiser(x2)(x2, torch.tensor([0.1, NAN, 0.1])), "ValueError", "sigma.*nan"),
        C("hashing", "`Noise().decode` without a denoiser", lambda _: hashing.Noise().decode(x2, x2), "ValueError", "denoiser"),
        # ------------------------------------------------------------------ degradations
        C("degrade", "`degrade(x, config=None)`", lambda _: degrade(img, None), "TypeError", "config.*None", True),
        C("degrade", "`degrade(x, generator=0)`", lambda _: degrade(img, "mnist32", generator=0), "TypeError", "generator.*0", True),
        C("degrade", "zero-width image", lambda _: degrade(torch.zeros(2, 1, 8, 0), "mnist32"), "ValueError", "height and width.*\\(2, 1, 8, 0\\)", True),
        C("degrade", "image in [0, 255]", lambda _: degrade(img + 255, "mnist32"), "ValueError", "x must have values in \\[-1, 1\\]"),
        C("degrade", "uint8 image", lambda _: degrade(img.to(torch.uint8), "mnist32"), "ValueError", "x must be a floating-point tensor.*uint8"),
        C("degrade", "`sample_params(-1)`", lambda _: sample_params(-1), "ValueError", "batch.*-1", True),
        C("degrade", "`sample_params(2.5)`", lambda _: sample_params(2.5), "TypeError", "batch.*2.5", True),
        C("degrade", "`DegradationConfig(scale_range=(0.01, 0.01))` (a 51,200² intermediate)", lambda _: DegradationConfig(scale_range=(0.01, 0.01)), "ValueError", "scale_range\\[0\\].*0.01", True),
        C("degrade", "`DegradationConfig(sigma_range=(0.1, inf))`", lambda _: DegradationConfig(sigma_range=(0.1, INF)), "ValueError", "sigma_range\\[1\\].*inf"),
        C("degrade", "`DegradationConfig(gray_prob=nan)`", lambda _: DegradationConfig(gray_prob=NAN), "ValueError", "gray_prob.*nan"),
        C("degrade", "`DegradationConfig(kernel_size=40)`", lambda _: DegradationConfig(kernel_size=40), "ValueError", "kernel_size.*40"),
        C("degrade", "`get_preset('celeba')`", lambda _: get_preset("celeba"), "ValueError", "'celeba'.*ffhq512"),
        # ------------------------------------------------------------------ metrics
        C("metrics", "`psnr(..., data_range=0)`", lambda _: psnr(img, img + 0.1, data_range=0), "ValueError", "data_range.*0", True),
        C("metrics", "`psnr(..., data_range=-1)`", lambda _: psnr(img, img + 0.1, data_range=-1), "ValueError", "data_range.*-1", True),
        C("metrics", "`psnr` of uint8 images (would wrap around)", lambda _: psnr(img.to(torch.uint8), img.to(torch.uint8)), "ValueError", "x must be a float image.*uint8"),
        C("metrics", "Fréchet distance of NaN features (was numpy's LinAlgError)", lambda _: frechet_distance(torch.randn(5, 3), torch.full((5, 3), NAN)), "ValueError", "feats_b.*NaN", True),
        # ------------------------------------------------------------------ files: checkpoints, data
        C("checkpoint", "0-byte checkpoint file", lambda t: load_checkpoint(_checkpoint(t, b"")), "CheckpointError", "checkpoint-000000002.pt: the file is empty", True),
        C("checkpoint", "truncated checkpoint file", lambda t: load_checkpoint(_checkpoint(t, b"half")), "CheckpointError", "cannot read checkpoint <tmp>/checkpoint-000000002.pt"),
        C("checkpoint", "missing checkpoint file", lambda t: load_checkpoint(t / "nope.pt"), "FileNotFoundError", "nope.pt"),
        C("checkpoint", "checkpoint of other shapes", lambda t: load_checkpoint(_checkpoint(t)).restore(model=nn.Linear(2, 4)), "CheckpointError", "<tmp>/checkpoint-000000002.pt: part 'model'", True),
        C("checkpoint", "resume into another variant's folder (same shapes)", _resume_other_variant, "CheckpointMismatchError", "differ in \\['variant'\\]", True),
        C("checkpoint", "resume where only another run's config.json is", _resume_other_config, "CheckpointMismatchError", "config.json belongs to another run"),
        C("data", "`load_mnist(root=<empty folder>)`", lambda t: load_mnist("test", root=t), "MNISTFilesMissingError", "No MNIST files under root="),
        C("data", "MNIST folder with corrupt idx files", _corrupt_mnist, "MNISTFilesCorruptError", "cannot be read as torchvision's MNIST"),
        C("data", "`ImageFolder(<folder without images>)`", lambda t: _image_folder(t), "ValueError", "no PNG/JPEG images.*<tmp>"),
        # ------------------------------------------------------------------ training
        C("train", "`total_steps=-3` (returned an empty result)", lambda _: _train(total_steps=-3), "ValueError", "total_steps.*-3", True),
        C("train", "`total_samples=0`", lambda _: _train(total_steps=None, total_samples=0), "ValueError", "total_samples.*0"),
        C("train", "`lr=inf`", lambda _: _train(lr=INF), "ValueError", "lr.*inf", True),
        C("train", "`lr=nan`", lambda _: _train(lr=NAN), "ValueError", "lr.*nan"),
        C("train", "NaN in the training data", lambda _: _train(dataset=torch.full((64, 2), NAN)), "ValueError", "dataset holds NaN/inf in 64 of 64", True),
        C("train", "pairs that turn NaN (first non-finite loss)", lambda _: _train(pair_fn=lambda x, g: (x, x * NAN, None)), "NonFiniteLossError", "step 1: the loss is nan", True),
        C("train", "`lr=1e12` (diverges to NaN)", lambda _: _train(lr=1e12, total_steps=60), "NonFiniteLossError", "training stopped at step \\d+.*lr=1e\\+12", True),
        C("train", "`grad_clip=0`", lambda _: _train(grad_clip=0.0), "ValueError", "grad_clip.*0"),
        C("train", "`batch_size=30, grad_accum=4`", lambda _: _train(batch_size=30, grad_accum=4), "ValueError", "batch_size 30.*multiple"),
        C("train", "`resume=True` without a run_dir", lambda _: _train(resume=True), "ValueError", "resume=True needs a run_dir"),
        C("train", "a used run_dir without `resume=True`", lambda t: (_train(run_dir=t / "r"), _train(run_dir=t / "r")), "FileExistsError", "<tmp>/r already holds a run"),
        C("experiment", "`MNISTConfig(eval_size=5000)`", lambda _: MNISTConfig(eval_size=5000), "ValueError", "eval_size.*5000", True),
        C("experiment", "`check_variants('a-vanilla')` (a string)", lambda _: check_variants("a-vanilla"), "TypeError", "did you mean \\['a-vanilla'\\]", True),
        # ------------------------------------------------------------------ notebook parameters
        C("notebook", "papermill `NFEE=5` for notebook 01 (ran the defaults)", lambda _: check_parameters(nb01, {"NFEE": 5}), "ValueError", "unknown parameter NFEE \\(did you mean NFE\\?\\)", True),
        C("notebook", "notebook 01 `BETA_MAX=inf`", lambda _: check_parameters(nb01, {"BETA_MAX": INF}), "ValueError", "BETA_MAX must be finite", True),
        C("notebook", "notebook 05 `STRENGTH=nan`", lambda _: check_parameters(nb05, {"STRENGTH": NAN}), "ValueError", "STRENGTH must be finite", True),
        C("notebook", "notebook 01 `NFE='5'` (a string)", lambda _: check_parameters(nb01, {"NFE": "5"}), "ValueError", "NFE must be an int like its default"),
        C("notebook", "`check_param('STRENGTH', nan, float, min=0, max=1)`", lambda _: check_param("STRENGTH", NAN, float, min=0.0, max=1.0), "ValueError", "STRENGTH must be a finite number", True),
        # ------------------------------------------------------------------ command lines (exit 2, nothing written)
        C("CLI", "`make notebook NB=…01… P='-p NFEE 5'`", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-p", "NFEE", "5"], chdir=False), "exit 2", "unknown parameter NFEE", True),
        C("CLI", "`python -m pi2sb_lab.notebook notebooks/nope.py`", _cli("-m pi2sb_lab.notebook", ["notebooks/nope.py"], chdir=False), "exit 2", "argument notebook: no such file"),
        C("CLI", "`toy/mnist.py --eval-size 5000`", _cli("toy/mnist.py", ["--eval-size", "5000", "--out", "run"]), "exit 2", "--eval-size must lie in \\[2, 1000\\]", True),
        C("CLI", "`toy/mnist.py --out FILE` (an existing file)", _cli("toy/mnist.py", ["--out", "FILE"]), "exit 2", "argument --out: FILE exists and is not a folder", True),
        C("CLI", "`toy/mnist.py --out FILE/sub` (cannot be created)", _cli("toy/mnist.py", ["--out", "FILE/sub"]), "exit 2", "argument --out: FILE/sub cannot be created", True),
        C("CLI", "`toy/mnist.py --mnist-root EMPTY`", _cli("toy/mnist.py", ["--mnist-root", "EMPTY", "--out", "run"]), "exit 2", "argument --mnist-root: No MNIST files", True),
        C("CLI", "`toy/mnist.py --lr inf`", _cli("toy/mnist.py", ["--lr", "inf", "--out", "run"]), "exit 2", "--lr must be a finite number"),
        C("CLI", "`toy/mnist.py --variants z-gan`", _cli("toy/mnist.py", ["--variants", "z-gan"]), "exit 2", "unknown variant\\(s\\) \\['z-gan'\\]"),
        C("CLI", "`toy/twod.py --nfe 0`", _cli("toy/twod.py", ["--nfe", "0", "--out", "run"]), "exit 2", "argument --nfe", True),
        C("CLI", "`toy/twod.py --n-train 0`", _cli("toy/twod.py", ["--n-train", "0", "--out", "run"]), "exit 2", "argument --n-train", True),
        C("CLI", "`toy/twod.py --n-test 1`", _cli("toy/twod.py", ["--n-test", "1", "--out", "run"]), "exit 2", "argument --n-test", True),
        C("CLI", "`toy/twod.py --out FILE`", _cli("toy/twod.py", ["--out", "FILE"]), "exit 2", "argument --out: FILE exists"),
        C("CLI", "`bench/degrade.py --repeats 0`", _cli("bench/degrade.py", ["--repeats", "0"]), "exit 2", "argument --repeats", True),
        C("CLI", "`bench/degrade.py --images 0`", _cli("bench/degrade.py", ["--images", "0"]), "exit 2", "argument --images", True),
        C("CLI", "`bench/degrade.py --batch-size 0`", _cli("bench/degrade.py", ["--batch-size", "0"]), "exit 2", "argument --batch-size", True),
        C("CLI", "`bench/degrade.py --size 8`", _cli("bench/degrade.py", ["--size", "8"]), "exit 2", "argument --size", True),
    ] + _issue17_cases(C)


# ------------------------------------------------------------------ issue 17: the drivers, hostile files, faults
def _png(path: Path, array=None, mode: str | None = None, fmt: str = "PNG", **save) -> Path:
    """A small image file (default: an 8-bit RGB gradient, 32²)."""
    import numpy as np
    from PIL import Image

    if array is None:
        array = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, format=fmt, **save)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _files(tmp: Path) -> None:
    """What the driver cases point at, in ``tmp``: faces/ (2 PNGs), clash/ (a.png + a.jpg), bad/ (text named
    .png), evil.zip (a member ../../escaped.png), nopics.zip, one.png, a full/train.py run folder's pieces."""
    for i in range(2):
        _png(tmp / "faces" / f"img_{i}.png")
    _png(tmp / "clash" / "a.png")
    _png(tmp / "clash" / "a.jpg", fmt="JPEG")
    (tmp / "bad").mkdir()
    (tmp / "bad" / "a.png").write_text("not an image")
    _zip(tmp / "evil.zip", {"../../escaped.png": _png(tmp / "one.png").read_bytes()})
    _zip(tmp / "nopics.zip", {"readme.txt": b"no faces"})


def _full_checkpoint(tmp: Path, variant: str = "f-res") -> Path:
    """A full/train.py checkpoint of a tiny bridge at 32² (untrained: what the drivers check is the same)."""
    from full.common import recipe_of
    from full.config import load_config
    from pi2sb_lab.checkpoint import save_checkpoint

    cfg = load_config(variant, ["net=tiny", "image_size=32", "device=cpu"])
    model = recipe_of(cfg).network(cfg.seed)
    return save_checkpoint(tmp / "run" / "checkpoint-000000008.pt", config={"extra": cfg.as_dict()}, step=8,
                           model=model, ema={"model": model.state_dict()})


def _params(folder: Path, names: list[str], vector: dict | None = None) -> Path:
    import json

    from pi2sb_lab.degrade import DEGRADATION_PARAM_NAMES

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        record = {"vector": vector if vector is not None else {k: 0.5 for k in DEGRADATION_PARAM_NAMES}}
        (folder / f"{name}.json").write_text(json.dumps(record))
    return folder


@contextlib.contextmanager
def _no_gpu():
    """Run a case as on a machine without CUDA (the table must read the same on a GPU machine)."""
    real = torch.cuda.is_available
    torch.cuda.is_available = lambda: False
    try:
        yield
    finally:
        torch.cuda.is_available = real


def _run(relative: str, args: list[str], setup: Callable[[Path], None] | None = None, *, no_gpu: bool = False,
         unchanged: str | None = None) -> Callable[[Path], None]:
    """A driver case in ``tmp`` after ``_files`` (and ``setup``); ``{tmp}`` in args is the folder. With
    ``unchanged``, the case also checks that this file's bytes did not change (refused before writing)."""
    def run(tmp: Path) -> None:
        _files(tmp)
        if setup is not None:
            setup(tmp)
        before = (tmp / unchanged).read_bytes() if unchanged else None
        try:
            with _no_gpu() if no_gpu else contextlib.nullcontext():
                _cli(relative, [a.format(tmp=tmp) for a in args])(tmp)
        finally:
            if unchanged and (tmp / unchanged).read_bytes() != before:
                raise AssertionError(f"{unchanged} was overwritten by a refused run")
            if (tmp.parent / "escaped.png").exists() or (tmp / "escaped.png").exists():
                raise AssertionError("a file was written outside the output folder")
    return run


def _other_variant_run(tmp: Path) -> None:
    from full.config import load_config, save_config

    save_config(load_config("c-lq-da", ["data=faces", "run_dir=r"]), tmp / "r" / "config.yaml")


def _restore_record(tmp: Path) -> None:
    (tmp / "o").mkdir()
    (tmp / "o" / "restore.json").write_text('{"variant": "f-res", "step": 8, "weights": "ema", "nfe": 50, '
                                            '"ot_ode": false, "seed": 0}')


def _metrics_record(tmp: Path) -> None:
    (tmp / "m").mkdir()
    (tmp / "m" / "metrics.json").write_text('{"restored": "/elsewhere/restored"}')


def _image(kind: str):
    """Decode one hostile image (bytes made here) with the drivers' decoder."""
    import io

    import numpy as np
    from PIL import Image

    from pi2sb_lab.data.images import decode_image

    buffer = io.BytesIO()
    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    if kind == "16-bit":
        Image.fromarray((ramp * 65535).astype(np.uint16)).save(buffer, "PNG")
    elif kind == "float":
        Image.fromarray(ramp.astype(np.float32)).save(buffer, "TIFF")
    elif kind == "int32":
        Image.fromarray((ramp * 1000).astype(np.int32)).save(buffer, "TIFF")
    elif kind == "transparent":
        rgba = np.full((32, 32, 4), 255, np.uint8)
        rgba[:4, :4, 3] = 0
        Image.fromarray(rgba).save(buffer, "PNG")
    elif kind == "cmyk":
        Image.fromarray((ramp * 255).astype(np.uint8)).convert("CMYK").save(buffer, "JPEG")
    elif kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray((ramp * 255).astype(np.uint8)).convert("RGB").save(buffer, "JPEG", exif=exif)
    elif kind == "palette+alpha":
        Image.fromarray((ramp * 255).astype(np.uint8)).convert("P").save(buffer, "PNG", transparency=0)
    else:
        raise ValueError(kind)
    data = buffer.getvalue()
    if kind == "16-bit":
        image = decode_image(data, None, "g16.png")
        if not 120 <= image.float().mean() <= 135:  # the ramp's mid-grey, not 255 everywhere
            raise AssertionError(f"16-bit ramp decoded to mean {image.float().mean():.1f}")
    return decode_image(data, 16, f"{kind}.img")


def _grade(tmp: Path, which: str) -> None:
    import nbformat

    from pi2sb_lab.labs.course import grade

    if which == "empty":
        nbformat.write(nbformat.v4.new_notebook(), tmp / "lab1.ipynb")
        grade("lab1", tmp / "lab1.ipynb", source_dir=ROOT / "notebooks" / "labs", course=tmp / "course")
    else:
        other = tmp / "lab2_sampler_ot_ode.py"
        other.write_text((ROOT / "notebooks" / "labs" / "lab2_sampler_ot_ode.py").read_text())
        grade("lab1", other, source_dir=ROOT / "notebooks" / "labs", course=tmp / "course")


def _notebook_file(tmp: Path, text: str, args: list[str]) -> None:
    (tmp / "params.yaml").write_text(text)
    _cli("-m pi2sb_lab.notebook", args + ["-f", str(tmp / "params.yaml")], chdir=False)(tmp)


def _issue17_cases(C) -> list:
    if str(ROOT) not in sys.path:  # full/ is a folder of scripts at the repository root, not an installed package
        sys.path.insert(0, str(ROOT))
    from full.config import ConfigError, FullConfig, load_config, parse_overrides  # noqa: F401
    from pi2sb_lab import hashing, sampler
    from pi2sb_lab.diffusion import DDIMDenoiser, VPSchedule
    from pi2sb_lab.diffusion.editing import sdedit
    from pi2sb_lab.experiments.editing import EditConfig
    from pi2sb_lab.experiments.mnist import MNISTConfig
    from pi2sb_lab.metrics import ssim
    from pi2sb_lab.notebook import check_parameters, parse_value
    from pi2sb_lab.pipeline import restore
    from pi2sb_lab.schedule import SymmetricSchedule

    S, net = SymmetricSchedule(), (lambda x, t, c=None: x)
    nan_img = torch.zeros(2, 1, 8, 8)
    nan_img[0, 0, 0, 0] = NAN
    nb02, nb05 = ROOT / "notebooks" / "02_corollary_4_2.py", ROOT / "notebooks" / "05_mnist_pseudo_hashing.py"
    T, R, M, E = "full/train.py", "full/restore.py", "full/make_testset.py", "full/evaluate.py"
    tiny = ["net=tiny", "image_size=32", "device=cpu", "run_dir={tmp}/r"]
    ck = "{tmp}/run"

    def restore_cli(args, setup=None, **kw):
        def both(tmp):
            _full_checkpoint(tmp)
            if setup is not None:
                setup(tmp)
        return _run(R, [ck, *args], both, **kw)

    return [
        # ---- full/train.py: settings and paths checked before run_dir exists (nothing written on refusal)
        C("full/train", "`data=` unset", _run(T, ["e-cat", *tiny]), "exit 2", "data is not set"),
        C("full/train", "`data=EMPTY` (an empty folder)", _run(T, ["e-cat", "data=EMPTY", *tiny]), "exit 2", "data= 'EMPTY': no PNG/JPEG images", True),
        C("full/train", "`data=nopics.zip` (a zip with no images)", _run(T, ["e-cat", "data=nopics.zip", *tiny]), "exit 2", "data= 'nopics.zip': no PNG/JPEG images .* in this zip", True),
        C("full/train", "`data=FILE` (a text file)", _run(T, ["e-cat", "data=FILE", *tiny]), "exit 2", "data= 'FILE': not a folder or a zip", True),
        C("full/train", "`data=bad/` (text files named .png)", _run(T, ["e-cat", "data=bad", *tiny]), "exit 2", "none of the first 1 of 1 image\\(s\\) decodes"),
        C("full/train", "`data=` a missing path", _run(T, ["e-cat", "data=nope", *tiny]), "exit 2", "data= 'nope' does not exist"),
        C("full/train", "`run_dir=` empty (an unset shell variable)", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=32", "run_dir="]), "exit 2", "run_dir= is empty", True),
        C("full/train", "`run_dir=FILE`", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=32", "run_dir=FILE"]), "exit 2", "run_dir= FILE exists and is not a folder"),
        C("full/train", "`run_dir=faces/run` (inside the data)", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=32", "run_dir=faces/run"]), "exit 2", "is the input folder or inside it"),
        C("full/train", "`run_dir` of an earlier run, no --resume", _run(T, ["e-cat", "data=faces", *tiny], lambda t: (t / "r").mkdir() or (t / "r" / "config.json").write_text("{}")), "exit 2", "already holds a run: pass --resume"),
        C("full/train", "`b-lq --resume` into a c-lq-da run (config.yaml kept)", _run(T, ["b-lq", "data=faces", *tiny, "--resume"], _other_variant_run, unchanged="r/config.yaml"), "exit 2", "differs in variant='c-lq-da' there, 'b-lq' now", True),
        C("full/train", "`lr=inf`", _run(T, ["e-cat", "data=faces", *tiny, "lr=inf"]), "exit 2", "lr=inf must be a finite number", True),
        C("full/train", "`noise_level=.nan`", _run(T, ["noise", "data=faces", *tiny, "noise_level=.nan"]), "exit 2", "noise_level=nan must be a finite number", True),
        C("full/train", "`ema_decay=1`", _run(T, ["e-cat", "data=faces", *tiny, "ema_decay=1"]), "exit 2", "ema_decay must be a finite number in \\[0, 1\\); got 1.0"),
        C("full/train", "`grad_accum=3` (does not divide batch 64)", _run(T, ["e-cat", "data=faces", *tiny, "grad_accum=3"]), "exit 2", "batch_size=64 must be a multiple of world size × grad_accum = 1 × 3", True),
        C("full/train", "`seed=10**30`", _run(T, ["e-cat", "data=faces", *tiny, "seed=1000000000000000000000000000000"]), "exit 2", "seed=.* does not fit a 64-bit integer"),
        C("full/train", "`total_steps=0`", _run(T, ["e-cat", "data=faces", *tiny, "total_steps=0"]), "exit 2", "total_steps must be an integer >= 1 .*got 0"),
        C("full/train", "`image_size=30` for the tiny U-Net", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=30"]), "exit 2", "image_size=30 must be divisible by"),
        C("full/train", "`lr` without `=value`", _run(T, ["e-cat", "data=faces", "lr"]), "exit 2", "override 'lr' must look like key=value"),
        C("full/train", "`lrr=1` (a typo)", _run(T, ["e-cat", "data=faces", "lrr=1"]), "exit 2", "unknown key 'lrr' \\(did you mean 'lr'\\?\\)"),
        C("full/train", "a zip where the config name belongs", _run(T, ["evil.zip", "data=faces"]), "exit 2", "evil.zip is not a YAML text file \\(a zip file\\)", True),
        C("full/train", "a PNG where the config name belongs", _run(T, ["one.png", "data=faces"]), "exit 2", "one.png is not a YAML text file"),
        C("full/train", "`device=gpu`", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=32", "device=gpu"]), "exit 2", "device='gpu' must be null, 'cpu', 'cuda' or 'cuda:N'", True),
        C("full/train", "`device=cuda` without a GPU", _run(T, ["e-cat", "data=faces", "net=tiny", "image_size=32", "device=cuda", "run_dir=r"], no_gpu=True), "exit 2", "device= cuda: no CUDA GPU is visible", True),
        C("full/train", "`strategy=swap`", _run(T, ["e-cat", "data=faces", "strategy=swap"]), "exit 2", "strategy='swap' is not allowed"),
        # ---- full/restore.py
        C("full/restore", "`--device gpu`", restore_cli(["faces", "o", "--device", "gpu"]), "exit 2", "--device must be cpu, cuda or cuda:N.*got 'gpu' \\(did you mean cuda\\?\\)", True),
        C("full/restore", "`--device cuda` without a GPU", restore_cli(["faces", "o", "--device", "cuda"], no_gpu=True), "exit 2", "--device cuda: no CUDA GPU is visible", True),
        C("full/restore", "OUT that is an existing file", restore_cli(["faces", "FILE", "--params", "p"]), "exit 2", "OUT FILE exists and is not a folder", True),
        C("full/restore", "OUT empty (an unset shell variable)", restore_cli(["faces", ""]), "exit 2", "argument out: is empty"),
        C("full/restore", "OUT inside INPUT", restore_cli(["faces", "faces/o"]), "exit 2", "is the input folder or inside it"),
        C("full/restore", "INPUT a zip with member `../../escaped.png`", restore_cli(["evil.zip", "o", "--params", "p"], lambda t: _params(t / "p", ["x"])), "exit 2", "the name '../../escaped.png' would put its output outside", True),
        C("full/restore", "INPUT with `a.png` and `a.jpg`", restore_cli(["clash", "o", "--params", "p"], lambda t: _params(t / "p", ["a"])), "exit 2", "a.jpg and a.png", True),
        C("full/restore", "INPUT an empty folder", restore_cli(["EMPTY", "o", "--params", "p"], lambda t: _params(t / "p", ["x"])), "exit 2", "INPUT 'EMPTY': no PNG/JPEG images"),
        C("full/restore", "`--params` of another test set (exited 0, 0 restored)", restore_cli(["faces", "o", "--params", "p"], lambda t: _params(t / "p", ["other_0"])), "exit 2", "--params 'p' does not fit INPUT: 2 of 2 input\\(s\\)", True),
        C("full/restore", "`--params` vectors missing a field", restore_cli(["faces", "o", "--params", "p"], lambda t: _params(t / "p", ["img_0", "img_1"], {"sigma": 0.5})), "exit 2", "no 'vector' with the fields .* \\(missing 'gray'\\)|missing", True),
        C("full/restore", "`--params` a file", restore_cli(["faces", "o", "--params", "FILE"]), "exit 2", "--params 'FILE' is not a folder"),
        C("full/restore", "OUT holds another restoration (another --nfe)", restore_cli(["faces", "o", "--params", "p", "--nfe", "2"], lambda t: (_params(t / "p", ["img_0", "img_1"]), _restore_record(t))), "exit 2", "holds images restored with other settings \\(.*nfe: 50 there, 2 now"),
        C("full/restore", "nothing decodes (restored 0, exited 0)", restore_cli(["bad", "o", "--params", "p", "--nfe", "1"], lambda t: _params(t / "p", ["a"])), "exit 1", "none of the 1 image\\(s\\) could be restored; the first reason: a.png: cannot decode", True),
        C("full/restore", "CHECKPOINT a text file", _run(R, ["FILE", "faces", "o"]), "exit 2", "checkpoint 'FILE'"),
        C("full/restore", "`--nfe 0`", restore_cli(["faces", "o", "--nfe", "0"]), "exit 2", "--nfe must be >= 1"),
        C("full/restore", "da model without --params or --estimator", restore_cli(["faces", "o"]), "exit 2", "needs each input's eq. 19 vector"),
        C("full/restore", "`--prior` for a Res model", restore_cli(["faces", "o", "--params", "p", "--prior", ck], lambda t: _params(t / "p", ["img_0", "img_1"])), "exit 2", "--prior decodes Noise-I2SB only"),
        # ---- full/make_testset.py
        C("full/make_testset", "HQ zip with member `../../escaped.png` (wrote outside OUT)", _run(M, ["evil.zip", "o", "--size", "16"]), "exit 2", "the name '../../escaped.png' would put its output outside the output folder", True),
        C("full/make_testset", "HQ with `a.png` and `a.jpg` (one overwrote the other)", _run(M, ["clash", "o", "--size", "16"]), "exit 2", "1 output name\\(s\\) would be written by two inputs \\(a.jpg and a.png\\)", True),
        C("full/make_testset", "nothing decodes (FileNotFoundError on manifest.json)", _run(M, ["bad", "o", "--size", "16"]), "exit 1", "none of the 1 image\\(s\\) in bad could be decoded.*nothing written", True),
        C("full/make_testset", "OUT an existing file", _run(M, ["faces", "FILE", "--size", "16"]), "exit 2", "OUT FILE exists and is not a folder"),
        C("full/make_testset", "OUT empty", _run(M, ["faces", "", "--size", "16"]), "exit 2", "argument out: is empty"),
        C("full/make_testset", "OUT that already holds a test set", _run(M, ["faces", "o", "--size", "16"], lambda t: (t / "o").mkdir() or (t / "o" / "manifest.json").write_text("{}")), "exit 2", "already holds a test set \\(manifest.json\\)"),
        C("full/make_testset", "HQ a text file", _run(M, ["FILE", "o"]), "exit 2", "HQ 'FILE': not a folder or a zip"),
        C("full/make_testset", "HQ a zip without images", _run(M, ["nopics.zip", "o"]), "exit 2", "no PNG/JPEG images .* in this zip"),
        C("full/make_testset", "OUT inside HQ", _run(M, ["faces", "faces/o"]), "exit 2", "is the input folder or inside it"),
        C("full/make_testset", "OUT holds HQ", _run(M, ["faces", "."]), "exit 2", "holds the input HQ 'faces'"),
        C("full/make_testset", "`--size 4`", _run(M, ["faces", "o", "--size", "4"]), "exit 2", "--size must be >= 8"),
        C("full/make_testset", "`--limit 0`", _run(M, ["faces", "o", "--limit", "0"]), "exit 2", "--limit must be >= 1"),
        # ---- full/evaluate.py (all refused before any image is scored)
        C("full/evaluate", "`--device gpu`", _run(E, ["faces", "--device", "gpu", "--metrics", "niqe"]), "exit 2", "--device must be cpu, cuda or cuda:N", True),
        C("full/evaluate", "`--device cuda` without a GPU", _run(E, ["faces", "--device", "cuda"], no_gpu=True), "exit 2", "--device cuda: no CUDA GPU is visible", True),
        C("full/evaluate", "`--out FILE` (found after scoring)", _run(E, ["faces", "--hq", "faces", "--metrics", "psnr", "--out", "FILE"]), "exit 2", "--out FILE exists and is not a folder", True),
        C("full/evaluate", "`--out` of another folder's metrics", _run(E, ["faces", "--hq", "faces", "--metrics", "psnr", "--out", "m"], _metrics_record), "exit 2", "--out 'm' holds the metrics of another folder"),
        C("full/evaluate", "RESTORED an empty folder", _run(E, ["EMPTY", "--metrics", "niqe"]), "exit 2", "RESTORED 'EMPTY': no PNG/JPEG images"),
        C("full/evaluate", "`--hq` with `a.png` and `a.jpg`", _run(E, ["faces", "--hq", "clash", "--metrics", "psnr"]), "exit 2", "--hq 'clash': 1 output name\\(s\\) would be written by two inputs"),
        C("full/evaluate", "`--hq` a missing folder", _run(E, ["faces", "--hq", "nope", "--metrics", "psnr"]), "exit 2", "--hq 'nope' does not exist"),
        C("full/evaluate", "`--metrics psnr,foo`", _run(E, ["faces", "--hq", "faces", "--metrics", "psnr,foo"]), "exit 2", "unknown \\['foo'\\]"),
        C("full/evaluate", "`--metrics psnr` without --hq", _run(E, ["faces", "--metrics", "psnr"]), "exit 2", "need --hq"),
        C("full/evaluate", "`--hq` and `--fid-ref` together", _run(E, ["faces", "--hq", "faces", "--fid-ref", "faces", "--metrics", "psnr"]), "exit 2", "give --hq or --fid-ref, not both"),
        # ---- toy/: the same helper
        C("toy", "`toy/mnist.py --out ''`", _run("toy/mnist.py", ["--out", ""]), "exit 2", "argument --out: is empty", True),
        C("toy", "`toy/twod.py --out ''`", _run("toy/twod.py", ["--out", ""]), "exit 2", "argument --out: is empty"),
        C("toy", "`toy/baselines.py fig8 --out ''`", _run("toy/baselines.py", ["fig8", "--out", ""]), "exit 2", "argument --out: is empty"),
        C("toy", "`toy/mnist.py --device gpu`", _run("toy/mnist.py", ["--device", "gpu", "--out", "o"]), "exit 2", "--device must be 'auto', 'cpu' or 'cuda\\[:N\\]'; got 'gpu'", True),
        # ---- image decoding (every driver reads through it)
        C("images", "16-bit gray PNG (was all white)", lambda _: _accepted(_image("16-bit")), "accepted", "", True),
        C("images", "CMYK JPEG (converted, said in the manifest)", lambda _: _accepted(_image("cmyk")), "accepted", ""),
        C("images", "EXIF orientation 6 (turned upright)", lambda _: _accepted(_image("exif")), "accepted", ""),
        C("images", "RGBA with transparent pixels", lambda _: _image("transparent"), "ImageError", "cannot decode transparent.img: RGBA image with 16 \\(semi-\\)transparent pixel\\(s\\)", True),
        C("images", "palette PNG with a transparent colour", lambda _: _image("palette+alpha"), "ImageError", "transparent pixel"),
        C("images", "32-bit float TIFF", lambda _: _image("float"), "ImageError", "image mode 'F' \\(TIFF\\) is not decoded here", True),
        C("images", "32-bit integer TIFF", lambda _: _image("int32"), "ImageError", "image mode 'I' \\(TIFF\\)"),
        C("images", "text file named .png", lambda t: _image_file(t, b"not an image"), "ImageError", "not an image PIL can identify"),
        C("images", "PNG cut to a third", lambda t: _image_file(t, (lambda data: data[: len(data) // 3])(_png(t / "x.png").read_bytes())), "ImageError", "cannot decode .*face.png"),
        # ---- NaN in, NaN out (one check per call)
        C("sampler", "NaN in `sample`'s x1", lambda _: sampler.sample(net, nan_img, S, nfe=2), "ValueError", "x1 must be finite; it holds NaN/inf in 1 of 128", True),
        C("diffusion", "NaN in `sdedit`'s y", lambda _: sdedit(net, nan_img, VPSchedule(), t0=0.5, nfe=2), "ValueError", "y must be finite", True),
        C("diffusion", "NaN into `DDIMDenoiser`", lambda _: DDIMDenoiser(net, VPSchedule())(nan_img, 0.1), "ValueError", "x_noisy must be finite", True),
        C("pipeline", "NaN in `restore`'s degradation vector", lambda _: restore(net, torch.zeros(2, 1, 8, 8), S, hashing.Origin(), nfe=2, degradation=torch.full((2, 9), NAN)), "ValueError", "degradation must be finite; it holds NaN/inf in 18 of 18", True),
        C("pipeline", "NaN in `restore`'s y", lambda _: restore(net, nan_img, S, hashing.Origin(), nfe=2), "ValueError", "y must be finite"),
        C("metrics", "`ssim` of float images in [0, 255]", lambda _: ssim(torch.full((1, 3, 16, 16), 200.0), torch.full((1, 3, 16, 16), 100.0)), "ValueError", "x has values in \\[200, 200\\], far outside value_range=\\(-1, 1\\)", True),
        C("metrics", "`ssim` with NaN", lambda _: ssim(torch.full((1, 1, 16, 16), NAN), torch.zeros(1, 1, 16, 16)), "ValueError", "x has values in \\[nan, nan\\]"),
        # ---- the config loader from Python
        C("full/config", "`load_config('<a zip>')`", lambda t: load_config(_zip(t / "data.zip", {"a.png": b"x"})), "ConfigError", "data.zip is not a YAML text file"),
        C("full/config", "`FullConfig(lr=nan)`", lambda _: FullConfig(lr=NAN), "ConfigError", "lr=nan must be a finite number"),
        C("full/config", "`FullConfig(beta_max=inf)`", lambda _: FullConfig(beta_max=INF), "ConfigError", "beta_max=inf must be a finite number"),
        C("full/config", "override `=3` (no key)", lambda _: parse_overrides(["=3"]), "ConfigError", "override '=3' must look like key=value"),
        C("full/config", "a YAML list as the config file", lambda t: load_config((t / "c.yaml").write_text("- a\n") and t / "c.yaml"), "ConfigError", "must hold a mapping"),
        # ---- papermill's conventions: -y, -f, YAML lists, checked like -p
        C("CLI", "`make notebook … P=\"-y 'NFE: .nan'\"`", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-y", "NFE: .nan"], chdir=False), "exit 2", "parameter NFE must be an int like its default", True),
        C("CLI", "`-y 'NFEE: 5'` (a typo)", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-y", "NFEE: 5"], chdir=False), "exit 2", "unknown parameter NFEE \\(did you mean NFE\\?\\)"),
        C("CLI", "`-y '[1, 2]'` (not a mapping)", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-y", "[1, 2]"], chdir=False), "exit 2", "-y '\\[1, 2\\]' must be a YAML mapping NAME: value"),
        C("CLI", "`-y 'NFE: [1'` (broken YAML)", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-y", "NFE: [1"], chdir=False), "exit 2", "-y 'NFE: \\[1' is not valid YAML"),
        C("CLI", "`-f missing.yaml`", _cli("-m pi2sb_lab.notebook", ["notebooks/01_dirac_pair_bridge.py", "-f", "missing.yaml"], chdir=False), "exit 2", "-f missing.yaml: no such file", True),
        C("CLI", "`-f params.yaml` with `BETA_MAX: .inf`", lambda t: _notebook_file(t, "BETA_MAX: .inf\n", ["notebooks/01_dirac_pair_bridge.py"]), "exit 2", "parameter BETA_MAX must be finite", True),
        C("CLI", "`-p VARIANTS \"[a-vanilla, f-res]\"` (YAML list; accepted now)", lambda _: _accepted(check_parameters(nb05, {"VARIANTS": parse_value("[a-vanilla, f-res]")})), "accepted", "", True),
        C("CLI", "notebook 02 `-p GAP \"[a-vanilla, 3]\"` (a list for a float)", lambda _: check_parameters(nb02, {"GAP": parse_value("[a-vanilla, 3]")}), "ValueError", "parameter GAP must be a float like its default"),
        # ---- grading
        C("labs", "`make grade LAB=lab1` with lab2's notebook (RuntimeError)", lambda t: _grade(t, "other"), "LabError", "is not a notebook of lab1 \\(its graded cells are lab2's\\)", True),
        C("labs", "`make grade` with a notebook of no cells (max() of empty)", lambda t: _grade(t, "empty"), "LabError", "has no cells", True),
        # ---- one name and one check per training setting (issue 16)
        C("experiment", "`MNISTConfig(total_steps=2.5)` (a float length)", lambda _: MNISTConfig(total_steps=2.5), "TypeError", "total_steps must be an integer >= 1 .*got 2.5"),
        C("experiment", "`EditConfig(step_size=inf)` (accepted before)", lambda _: EditConfig(step_size=INF), "ValueError", "step_size must be a finite number >= 0; got inf"),
        C("CLI", "`toy/mnist.py --steps 0` (the old flag: the same check, the setting's flag named)", _cli("toy/mnist.py", ["--steps", "0", "--out", "run"]), "exit 2", "--total-steps must be an integer >= 1 .*got 0"),
    ]


def _image_file(tmp: Path, data: bytes) -> None:
    from pi2sb_lab.data.images import ImageFiles

    (tmp / "faces").mkdir(exist_ok=True)
    (tmp / "faces" / "face.png").write_bytes(data)
    ImageFiles(tmp / "faces", 16).read(0)


class _Accepted(Exception):
    """Raised by a case whose input is now valid (it used to fail): recorded as accepted."""


def _accepted(_result) -> None:
    raise _Accepted()


def run_case(case: Case) -> tuple[str, str]:
    """(what happened, the message): the error class or "exit N" for a command line, "accepted", or
    "NOT REFUSED" for a bad input that went through."""
    with tempfile.TemporaryDirectory() as tmp:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                case.run(Path(tmp))
        except _Accepted:
            return "accepted", "(valid now)"
        except SystemExit as exit_:
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            message = lines[-1] if lines else ""
            return f"exit {exit_.code}", message.replace(tmp, "<tmp>")
        except Exception as err:  # noqa: BLE001 - recording what happened is the point
            message = " ⏎ ".join(line.strip() for line in str(err).strip().splitlines())
            return type(err).__name__, message.replace(tmp, "<tmp>")
        return "NOT REFUSED", ""


def table(cases: list[Case] | None = None) -> tuple[str, list[tuple[Case, str, str]]]:
    """The markdown table and the raw results."""
    results = [(case, *run_case(case)) for case in (cases or _cases())]
    out = ["| # | issue | area | bad input | answer | message |", "|---|---|---|---|---|---|"]
    for i, (case, kind, message) in enumerate(results, 1):
        cell = message.replace("|", "\\|")
        out.append(f"| {i} | {'✓' if case.issue else ''} | {case.area} | {case.bad_input} | {kind} | {cell} |")
    return "\n".join(out) + "\n", results


HEADER = """# Bad input: what each gets now

Generated by `python tests/bad_input_table.py --write docs/bad_input.md` (every case is run; the test
`tests/test_bad_input_table.py` checks each answer and that this file is current). **issue**: listed in
issue 8 (rows 1–99) or issue 17 (the full/ drivers, hostile files, NaN inputs, papermill, grading); the others
were added. **answer**: the error raised, or `exit 2` for a command line (argparse's
usage line and `error:` message, no traceback, nothing written — the message column shows the `error:`
line). Temporary paths are shown as `<tmp>`.

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="write the markdown page here instead of printing the table")
    args = parser.parse_args(argv)
    text, results = table()
    refused = sum(kind not in ("NOT REFUSED",) for _, kind, _ in results)
    footer = (f"\n{len(results)} inputs ({sum(c.issue for c, _, _ in results)} from the issue, "
              f"{sum(not c.issue for c, _, _ in results)} added); {refused} answered clearly.\n")
    if args.write:
        args.write.write_text(HEADER + text + footer)
    else:
        sys.stdout.write(text + footer)
    return 0 if refused == len(results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
