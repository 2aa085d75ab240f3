"""toy/twod.py, the headless notebook-04 experiment: --help, a tiny run that writes its files, bad names."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "toy" / "twod.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_help():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--seeds", "--steps", "--strategies", "--ot-ode", "--out", "--workers"):
        assert option in proc.stdout


def test_tiny_run_writes_table_json_and_figure(tmp_path):
    out = tmp_path / "run"
    proc = run("--steps", "50", "--seeds", "1", "--n-train", "200", "--n-test", "100", "--workers", "1",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "results.md").read_text()
    for name in ("origin", "cat", "res", "noise", "origin+denoise", "degraded y"):
        assert f"| {name}" in table, table
    assert table.count("\n| ") >= 11 and "| strategy |" in proc.stdout
    report = json.loads((out / "results.json").read_text())
    assert len(report["runs"]) == 4 * 2 + 2  # 4 strategies × OT-ODE off/on, plus the two control rows
    assert report["config"]["total_steps"] == 50 and report["problem"]["n_test"] == 100
    assert (out / "restored.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_strategy_lists_the_valid_ones(capsys):
    spec = importlib.util.spec_from_file_location("twod", SCRIPT)
    twod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twod)
    with pytest.raises(SystemExit) as info:
        twod.parse_args(["--strategies", "origin", "swap"])
    assert info.value.code == 2
    assert "unknown pseudo-hashing strategy 'swap'; valid names: origin, cat, res, noise" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        twod.parse_args(["--seeds", "0"])
    assert twod.parse_args(["--strategies", "Cat-I2SB", "res"]).strategies == ["cat", "res"]


@pytest.mark.parametrize("args, message", [
    (["--nfe", "0"], "argument --nfe: must be an integer in [1, 1000000]; got '0'"),
    (["--n-train", "0"], "argument --n-train: must be an integer >= 1; got '0'"),
    (["--n-test", "1"], "argument --n-test: must be an integer >= 2 (the metrics need two); got '1'"),
    (["--seeds", "0"], "argument --seeds: must be an integer >= 1; got '0'"),
    (["--out", "FILE"], "argument --out: FILE exists and is not a folder"),
])
def test_bad_numbers_exit_2_and_leave_no_folder(args, message, tmp_path, capsys, monkeypatch):
    """These once died in a traceback after creating an empty run folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    spec = importlib.util.spec_from_file_location("twod", SCRIPT)
    twod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(twod)
    with pytest.raises(SystemExit) as info:
        twod.main(args + (["--out", "run"] if "--out" not in args else []))
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"], "a folder was left behind"
