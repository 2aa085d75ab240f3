"""Every notebook in notebooks/ runs under papermill with small parameters, then passes nbval --nbval-lax.

Small parameters for a notebook live in tests/notebooks/<notebook stem>.json; every run also gets
INTERACTIVE=False and an OUTPUT_DIR inside the test's temporary folder. Executed copies are kept in
build/notebooks/ for inspection.
"""

import json
import subprocess
import sys
from pathlib import Path

import jupytext
import papermill
import pytest

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
    out_dir.mkdir(parents=True, exist_ok=True)
    source = tmp_path / f"{nb_path.stem}.ipynb"
    jupytext.write(jupytext.read(nb_path), source)
    executed = out_dir / f"{nb_path.stem}.executed.ipynb"
    # the headers name no kernel (notebooks/jupytext.toml keeps them machine-independent)
    papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                               language="python", cwd=str(nb_path.parent), progress_bar=False)
    return executed


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
