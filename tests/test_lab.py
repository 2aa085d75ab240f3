"""`make lab` starts JupyterLab and serves the jupytext .py notebooks as notebooks; `make notebook` runs one."""

import json
import shutil
import subprocess
import urllib.request

import pytest

from lab_server import ROOT, LabServer, make_command

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_lab_serves_notebook_01_and_opens_py_as_notebook(tmp_path):
    with LabServer(log=tmp_path / "lab.log") as lab:
        lab.wait_ready()
        body = lab.api("/api/contents/notebooks/01_dirac_pair_bridge.py?type=notebook&content=1")
        assert body["type"] == "notebook", body["type"]
        cells = body["content"]["cells"]
        tags = [c["metadata"].get("tags", []) for c in cells]
        assert any("parameters" in t for t in tags), "the parameters cell did not survive the jupytext round trip"
        assert any("Dirac-pair bridge" in "".join(c["source"]) for c in cells)
        # the header names no kernel; jupytext fills in the one of the Python that runs the server
        assert body["content"]["metadata"]["kernelspec"]["name"] == "python3", body["content"]["metadata"]
        # double-click opens a .py with the Jupytext Notebook viewer: the repo's settings override is served
        docmanager = lab.api("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
        viewers = docmanager["schema"]["properties"]["defaultViewers"]["default"]
        assert viewers.get("python") == "Jupytext Notebook", f"defaultViewers = {viewers}"
        # the lab UI page itself is served too
        page = urllib.request.urlopen(urllib.request.Request(f"{lab.url}/lab?token={lab.token}"), timeout=10)
        assert page.status == 200


@needs_make
def test_make_notebook_runs_papermill_with_parameters(tmp_path):
    """The README's papermill command: `make notebook NB=... P="-p NAME VALUE"`."""
    out = tmp_path / "nb01"
    proc = subprocess.run(make_command("notebook", "NB=notebooks/01_dirac_pair_bridge.py",
                                       f"P=-p NFE 12 -p N_PATHS 500 -p OUTPUT_DIR {out}"),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    executed = ROOT / "build" / "notebooks" / "01_dirac_pair_bridge.out.ipynb"
    nb = json.loads(executed.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "NFE = 12" in "".join(injected[0]["source"])
    assert (out / "dirac_pair_bridge.png").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_notebook_stops_at_a_misspelt_parameter():
    """The README's promise: a bad parameter stops the run at once, naming it (papermill alone would run
    the defaults). Exit 2 from the argparse-style checker, before any kernel starts."""
    proc = subprocess.run(make_command("notebook", "NB=notebooks/01_dirac_pair_bridge.py", "P=-p NFEE 5"),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "unknown parameter NFEE (did you mean NFE?)" in proc.stderr, proc.stderr[-2000:]
    assert "Error 2" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").rglob("*.py")), ids=lambda p: p.stem)
def test_saving_a_notebook_writes_back_the_same_bytes(path):
    """What JupyterLab's jupytext contents manager writes on save (the browser test checks it for real)."""
    import jupytext
    from jupytext.config import load_jupytext_config

    text = path.read_text()
    config = load_jupytext_config(str(path))
    assert config is not None and "-kernelspec" in config.notebook_metadata_filter, \
        f"{path} is not under notebooks/jupytext.toml's settings"
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (anything)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.x"}  # what a running kernel adds
    saved = jupytext.writes(nb, fmt="py:percent", config=config)
    assert saved == text, f"{path.name}: a save would rewrite the file:\n" + "".join(
        __import__("difflib").unified_diff(text.splitlines(True), saved.splitlines(True), "tracked", "saved"))
