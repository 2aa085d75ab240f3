"""Every notebook in notebooks/ runs under papermill with small parameters, then passes nbval --nbval-lax.

Small parameters for a notebook live in tests/notebooks/<notebook stem>.json; every run also gets
INTERACTIVE=False and an OUTPUT_DIR inside the test's temporary folder. Executed copies are kept in
build/notebooks/ for inspection.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import papermill
import pytest

from pi2sb_lab.notebook import check_param, check_parameters, execute_notebook, notebook_parameters
from pi2sb_lab.notebook import main as notebook_main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
EXECUTED = ROOT / "build" / "notebooks"


def small_parameters(stem: str, tmp_path: Path) -> dict:
    params = {"INTERACTIVE": False, "OUTPUT_DIR": str(tmp_path / "out")}
    override = ROOT / "tests" / "notebooks" / f"{stem}.json"
    if override.exists():
        params.update(json.loads(override.read_text()))
    return params


def execute(nb_path: Path, tmp_path: Path, parameters: dict, out_dir: Path = EXECUTED) -> Path:
    """The harness runs notebooks the way users are told to: through execute_notebook, which checks the
    parameters against the notebook's parameters cell before a kernel starts."""
    executed = out_dir / f"{nb_path.stem}.executed.ipynb"
    return execute_notebook(nb_path, executed, parameters, progress_bar=False)


@pytest.mark.notebook
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_passes_nbval(nb_path, tmp_path):
    nb = jupytext.read(nb_path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"
    assert any("assert " in c.source for c in nb.cells if c.cell_type == "code"), \
        f"{nb_path.name} states no result with assert"
    executed = execute(nb_path, tmp_path, small_parameters(nb_path.stem, tmp_path))
    # nbval re-runs the executed copy (which carries the injected small parameters) and checks
    # that every cell runs; --nbval-lax compares outputs only where a cell asks for it.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", str(executed)], cwd=executed.parent, capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"nbval failed on {executed}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"


def test_bad_papermill_parameter_gives_a_clear_error(tmp_path):
    nb_path = ROOT / "notebooks" / "01_dirac_pair_bridge.py"
    params = small_parameters(nb_path.stem, tmp_path) | {"GRID": "cosine"}
    with pytest.raises(papermill.PapermillExecutionError, match=r"parameter GRID must be one of"):
        execute(nb_path, tmp_path, params, out_dir=tmp_path / "failed")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_suites_small_parameters_are_the_notebooks_own(nb_path, tmp_path):
    """Every name in tests/notebooks/<stem>.json is assigned in the notebook's parameters cell, with a
    value of the default's type (a renamed parameter would otherwise be ignored and the notebook run big)."""
    params = small_parameters(nb_path.stem, tmp_path)
    assert check_parameters(nb_path, params) == params
    assert set(params) <= set(notebook_parameters(nb_path))


@pytest.mark.parametrize("params, match", [
    ({"NFEE": 5}, r"unknown parameter NFEE \(did you mean NFE\?\)\. Its parameters are: SEED, BETA_MIN, BETA_MAX, NFE"),
    ({"BETA_MAX": float("inf")}, "parameter BETA_MAX must be finite; got inf"),
    ({"NFE": "5"}, r"parameter NFE must be an int like its default 100; got '5' \(str\)"),
    ({"OT_ODE": 1}, r"parameter OT_ODE must be a bool like its default False; got 1 \(int\)"),
])
def test_bad_parameters_stop_before_a_kernel_starts(params, match, tmp_path):
    """Papermill alone only warns about an unknown name and runs with the defaults."""
    nb_path = ROOT / "notebooks" / "01_dirac_pair_bridge.py"
    out = tmp_path / "never.ipynb"
    with pytest.raises(ValueError, match=match):
        execute_notebook(nb_path, out, params)
    assert not out.exists()


def test_make_notebooks_command_refuses_a_misspelt_parameter_with_exit_2(tmp_path):
    """`make notebook` runs `python -m pi2sb_lab.notebook NB $(P)`: argparse's message, exit 2, no traceback,
    nothing written."""
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "pi2sb_lab.notebook", "notebooks/01_dirac_pair_bridge.py",
                           "-p", "NFEE", "5", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "unknown parameter NFEE (did you mean NFE?)" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "usage: python -m pi2sb_lab.notebook" in proc.stderr and not out.exists()
    assert "$(PY) -m pi2sb_lab.notebook $(NB) $(P)" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("args, match", [
    (["-p", "BETA_MAX", "inf"], "parameter BETA_MAX must be finite; got inf"),
    (["-p", "NFE", "abc"], "parameter NFE must be an int like its default 100; got 'abc'"),
    (["-p", "GRID"], "expected 2 arguments"),
])
def test_the_command_refuses_bad_values_too(args, match, tmp_path, capsys, monkeypatch):
    """The same main in this process (the subprocess run above is the command line itself)."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out.ipynb"
    with pytest.raises(SystemExit) as info:
        notebook_main(["notebooks/01_dirac_pair_bridge.py", *args, "--out", str(out)])
    assert info.value.code == 2 and re.search(match, capsys.readouterr().err) and not out.exists()


def test_notebook_05_refuses_a_nan_strength_before_running(tmp_path):
    with pytest.raises(ValueError, match="parameter STRENGTH must be finite; got nan"):
        check_parameters(ROOT / "notebooks" / "05_mnist_pseudo_hashing.py", {"STRENGTH": float("nan")})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_check_param_refuses_non_finite_numbers(value):
    """NaN passes `value < min` and `value > max` (both False), inf passes a min: both refused now."""
    with pytest.raises(ValueError, match="must be a finite number"):
        check_param("STRENGTH", value, float, min=0.0, max=1.0)
