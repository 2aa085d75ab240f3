"""toy/mnist.py (what `make demo` runs): --help, bad arguments, and a --quick run that writes every output."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "toy" / "mnist.py"


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_documents_the_commands():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for needle in ("--seeds", "--variants", "--quick", "--device", "--out", "--seeds 0 1 2", "a-vanilla", "f-res",
                   "results.md", "fig6_step_error.png"):
        assert needle in proc.stdout, needle


@pytest.mark.parametrize("args, message", [
    (["--variants", "a-vanilla", "z-gan"], "valid names: a-vanilla, b-lq, c-lq-da, d-noise, e-cat, f-res"),
    (["--seeds", "-1"], "seeds must be integers >= 0"),
    (["--seeds", "0", "0"], "must not repeat a seed"),
    (["--steps", "0"], "--total-steps must be an integer >= 1"),
    (["--device", "tpu"], "--device must be 'auto', 'cpu' or 'cuda[:N]'"),
])
def test_bad_arguments_say_what_is_accepted(args, message, capsys):
    with pytest.raises(SystemExit) as info:  # in this process: the same parse_args as `python toy/mnist.py ARGS`
        _driver().parse_args(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err, err


def test_quick_run_writes_table_json_and_figures(tmp_path):
    out = tmp_path / "run"
    proc = run("--quick", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("results.md", "results.json", "samples.png", "fig6_step_error.png", "losses.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in report["runs"]] == ["a-vanilla", "b-lq", "c-lq-da", "d-noise", "e-cat", "f-res",
                                                       "noise", "cat", "res"]
    assert report["config"]["total_steps"] == 20 and report["seeds"] == [0] and report["eval_size"] == 32
    assert len(report["runs"][0]["step_error"]) == report["config"]["nfe"] == 4
    table = (out / "results.md").read_text()
    assert "| degraded input (y) |" in table and "| (e) + lq + da, Cat | cat | ✓ | ✓ |" in table
    assert "| degraded input (y) |" in proc.stdout


def _driver():
    spec = importlib.util.spec_from_file_location("toy_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, message", [
    (["--eval-size", "5000"], "--eval-size must lie in [2, 1000]"),
    (["--lr", "inf"], "--lr must be a finite number > 0; got inf"),
    (["--lr", "nan"], "--lr must be a finite number > 0; got nan"),
    (["--out", "FILE"], "argument --out: FILE exists and is not a folder"),
    (["--out", "FILE/sub"], "argument --out: FILE/sub cannot be created: FILE is not a folder"),
    (["--mnist-root", "EMPTY"], "argument --mnist-root: No MNIST files under root="),
])
def test_bad_arguments_leave_nothing_behind(args, message, tmp_path, capsys, monkeypatch):
    """In this process (what `python toy/mnist.py ARGS` runs): exit 2, argparse's message, and no run folder
    (--eval-size 5000 once created the folder, then died in a traceback)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "EMPTY").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as info:
        _driver().main(args + (["--out", "run"] if "--out" not in args else []))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: toy/mnist.py" in err and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "something was written"


def test_another_variants_checkpoint_stops_the_driver_with_exit_2(tmp_path, capsys, monkeypatch):
    """The driver's answer to a refused fingerprint: its message with the flag to override, exit 2."""
    from pi2sb_lab.checkpoint import CheckpointMismatchError

    driver = _driver()

    def refuse(*args, **kwargs):
        assert kwargs["ignore_fingerprint"] is False
        raise CheckpointMismatchError("run/seed0/res/checkpoint-000000300.pt belongs to another run: ... "
                                      "Use a new folder, or pass ignore_fingerprint=True to load it anyway.")

    monkeypatch.setattr(driver, "run_ablation", refuse)
    assert driver.main(["--quick", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("toy/mnist.py: error: run/seed0/res/checkpoint-000000300.pt belongs to another run")
    assert "pass --ignore-fingerprint to load it anyway" in err


def test_mnist_root_flag_reaches_the_config(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    args = _driver().parse_args(["--mnist-root", str(tmp_path), "--eval-size", "5000", "--out", str(tmp_path / "r")])
    assert args.config.mnist_root == str(tmp_path) and args.config.eval_size == 5000
    assert not (tmp_path / "r").exists()  # parsing creates nothing
