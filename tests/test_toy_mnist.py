"""toy/mnist.py (what `make demo` runs): --help, bad arguments, and a --quick run that writes every output."""

from __future__ import annotations

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
    (["--steps", "0"], "steps must be an int >= 1"),
    (["--device", "tpu"], "--device must be 'auto', 'cpu' or 'cuda[:N]'"),
])
def test_bad_arguments_say_what_is_accepted(args, message):
    proc = run(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_quick_run_writes_table_json_and_figures(tmp_path):
    out = tmp_path / "run"
    proc = run("--quick", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("results.md", "results.json", "samples.png", "fig6_step_error.png", "losses.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in report["runs"]] == ["a-vanilla", "b-lq", "c-lq-da", "d-noise", "e-cat", "f-res",
                                                       "noise", "cat", "res"]
    assert report["config"]["steps"] == 20 and report["seeds"] == [0] and report["eval_size"] == 32
    assert len(report["runs"][0]["step_error"]) == report["config"]["nfe"] == 4
    table = (out / "results.md").read_text()
    assert "| degraded input (y) |" in table and "| (e) + lq + da, Cat | cat | ✓ | ✓ |" in table
    assert "| degraded input (y) |" in proc.stdout
