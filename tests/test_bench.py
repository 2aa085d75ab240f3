"""The README's bench command runs (numbers are printed, never asserted: timing belongs in bench/)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_degrade_quick_prints_both_rates_and_the_ratio():
    proc = subprocess.run([sys.executable, "bench/degrade.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = re.search(r"pi2sb_lab\.degrade \(CPU\):\s+([\d.]+) images/s", proc.stdout)
    cv = re.search(r"OpenCV.*:\s+([\d.]+) images/s", proc.stdout)
    ratio = re.search(r"ratio ours / OpenCV\s+:\s+([\d.]+)", proc.stdout)
    assert ours and cv and ratio, proc.stdout
    assert abs(float(ratio[1]) - float(ours[1]) / float(cv[1])) < 0.02, proc.stdout


def test_bench_peer_refuses_a_folder_that_is_not_an_i2sb_checkout(tmp_path):
    """The run itself needs an NVlabs/I2SB checkout (docs/performance.md); its set-up is checked here."""
    proc = subprocess.run([sys.executable, "bench/peer.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "is not an NVlabs/I2SB checkout (no i2sb/runner.py)" in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "bench/peer.py", str(tmp_path), "--parts", "loop,nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--parts must name some of step,adamw,ema,loop,sampler" in proc.stderr


def test_bench_help():
    proc = subprocess.run([sys.executable, "bench/degrade.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "--quick" in proc.stdout


@pytest.mark.parametrize("script, expected", [
    ("train_step.py", r"whole step\s+:\s+[\d.]+ s per step \(\s*[\d.]+ images/s\)"),
    ("restore.py", r"NFE\s+2:\s+[\d.]+ s per image"),
    ("sampler_steps.py", r"ratio before/table [\d.]+×; table/floor [\d.]+×"),
])
def test_full_scale_benches_run_quick(script, expected):
    proc = subprocess.run([sys.executable, f"bench/{script}", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(expected, proc.stdout), proc.stdout


def test_bench_bad_arguments_exit_2_with_argparse_messages(capsys):
    """Each once crashed (ZeroDivisionError / IndexError) after the set-up; now argparse refuses them.
    (In this process: `python bench/degrade.py ARGS` runs the same main.)"""
    spec = importlib.util.spec_from_file_location("bench_degrade", ROOT / "bench" / "degrade.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cases = {"--repeats 0": "argument --repeats: must be an integer >= 1; got '0'",
             "--images 0": "argument --images: must be an integer >= 1; got '0'",
             "--batch-size 0": "argument --batch-size: must be an integer >= 1; got '0'",
             "--size 8": "argument --size: must be an integer in [32, 4096] (pixels); got '8'"}
    for args, message in cases.items():
        with pytest.raises(SystemExit) as info:
            bench.main(args.split())
        assert info.value.code == 2, args
        err = capsys.readouterr().err
        assert err.startswith("usage: bench/degrade.py") and message in err, (args, err)
