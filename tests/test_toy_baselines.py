"""toy/baselines.py: --help of every study, bad arguments, and a quick run of each that writes every output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "toy" / "baselines.py"


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_documents_every_study():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for needle in ("fig8", "table6", "odedit", "budget", "fewstep", "python toy/baselines.py fig8 --quick"):
        assert needle in proc.stdout, needle
    for study, needles in (("fig8", ("--operators", "--models", "--nfes", "--seeds", "palette-v")),
                           ("table6", ("--operators", "OT-ODE")),
                           ("odedit", ("--corruptions", "--t0s", "--langevin", "--step-size")),
                           ("budget", ("--variants", "--budgets", "--ddim-nfe"))):
        proc = run(study, "--help")
        assert proc.returncode == 0, proc.stderr
        for needle in needles:
            assert needle in proc.stdout, (study, needle)


@pytest.mark.parametrize("args, message", [
    (["fig8", "--operators", "sr8x"], "valid names: sr4x-pool"),
    (["fig8", "--models", "gan"], "valid names: i2sb, i2sb-ot, palette, palette-v"),
    (["table6", "--models", "i2sb", "palette"], "table6 compares i2sb with i2sb-ot"),
    (["odedit", "--corruptions", "fog"], "valid names: noise, blur"),
    (["odedit", "--severities", "7"], "severities must be a non-empty list from [1, 2, 3, 4, 5]"),
    (["odedit", "--t0s", "1.5"], "t0s must lie in (0, 1]"),
    (["budget", "--variants", "z"], "valid names: a-vanilla"),
    (["budget", "--budgets", "0"], "must be an integer >= 1"),
    (["fig8", "--seeds", "0", "0"], "must not repeat a seed"),
    (["fig8", "--device", "tpu"], "--device must be 'auto', 'cpu' or 'cuda[:N]'"),
    (["gan"], "invalid choice"),
])
def test_bad_arguments_say_what_is_accepted(args, message, tmp_path, capsys):
    """In-process (argparse exits with 2 before anything is trained); one subprocess run below checks the
    real exit code and the absence of a traceback."""
    baselines = _driver()
    with pytest.raises(SystemExit) as exit_info:
        baselines.main([*args, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err, err
    assert not (tmp_path / "run").exists(), "a refused command must leave nothing behind"


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        _driver().main(["budget", "--quick", "--out", str(blocker)])
    assert exit_info.value.code == 2 and "exists and is not a folder" in capsys.readouterr().err


def test_a_refused_command_exits_2_without_traceback(tmp_path):
    proc = run("odedit", "--t0s", "1.5", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "t0s must lie in (0, 1]" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def _driver():
    import importlib.util

    spec = importlib.util.spec_from_file_location("toy_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args, files, check", [
    (["fig8", "--operators", "sr4x-pool", "--models", "i2sb", "palette"], ("fig8.png", "samples.png"),
     lambda r: r["operators"] == ["sr4x-pool"] and r["nfes"] == [1, 2] and len(r["cells"]) == 2),
    (["table6", "--operators", "blur-uni"], ("table6.png", "samples.png"),
     lambda r: r["models"] == ["i2sb", "i2sb-ot"] and len(r["cells"]) == 2),
    (["odedit", "--corruptions", "noise", "lines", "--severities", "2"], ("frontier.png", "samples.png"),
     lambda r: len(r["conditions"]) == 2 and len(r["records"]) == 4),
    (["budget", "--variants", "a-vanilla", "noise"], ("budget.png",),
     lambda r: r["budgets"] == [4, 8] and r["records"][1]["ddim_metrics"] is not None),
    (["fewstep", "--operators", "sr4x-pool", "--models", "goub", "palette"], ("fewstep.png",),
     lambda r: r["models"] == ["goub", "palette"] and len(r["cells"]) == 2
     and set(r["summary"]["sr4x-pool"]) == {"goub/markov", "goub/implicit", "goub/ode", "palette/ddim"}),
], ids=["fig8", "table6", "odedit", "budget", "fewstep"])
def test_quick_runs_write_table_json_and_figures(args, files, check, tmp_path):
    out = tmp_path / "run"
    proc = run(*args, "--quick", "--seeds", "0", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in ("results.md", "results.json", *files):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "results.json").read_text())
    assert check(report), report.keys()
    assert report["seeds"] == [0] and report["cpu_seconds"] > 0
    text = (out / "results.md").read_text()
    assert "Verdict" in text and "CPU time" in text and "python toy/baselines.py" in text
