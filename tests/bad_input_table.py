"""Every bad input we know of, run, with the message it now gets: the table of docs/bad_input.md.

    python tests/bad_input_table.py                        # print the table
    python tests/bad_input_table.py --write docs/bad_input.md

Each case calls the library, a command-line driver (in this process: its ``main(argv)``, which is what
``python toy/….py ARGS`` runs) or the notebook checker with one bad input, and records the error class
and its message (temporary paths shown as ``<tmp>``). ``tests/test_bad_input_table.py`` runs every case,
checks that each is refused with the expected error and a message that names the argument, and that the
committed table is current. ``issue`` marks the inputs listed in issue 8; the rest were added.
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
    ]


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
issue 8; the others were added. **answer**: the error raised, or `exit 2` for a command line (argparse's
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
