"""`make lab` starts JupyterLab and serves the jupytext .py notebooks as notebooks."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_notebook_01():
    port, token = free_port(), secrets.token_hex(8)
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/contents/notebooks/01_dirac_pair_bridge.py?type=notebook&content=1"
    try:
        deadline, body, last_err = time.time() + 90, None, None
        while time.time() < deadline and proc.poll() is None:
            try:
                req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
                body = json.loads(urllib.request.urlopen(req, timeout=5).read())
                break
            except OSError as err:  # server not up yet
                last_err = err
                time.sleep(1)
        assert body is not None, f"JupyterLab did not answer on port {port}: {last_err}; exit code {proc.poll()}"
        assert body["type"] == "notebook", body["type"]
        cells = body["content"]["cells"]
        tags = [c["metadata"].get("tags", []) for c in cells]
        assert any("parameters" in t for t in tags), "the parameters cell did not survive the jupytext round trip"
        assert any("Dirac-pair bridge" in "".join(c["source"]) for c in cells)
        # the lab UI page itself is served too
        lab = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/lab?token={token}"), timeout=10)
        assert lab.status == 200
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything make started with it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_notebook_runs_papermill_with_parameters(tmp_path):
    """The README's papermill command: `make notebook NB=... P="-p NAME VALUE"`."""
    out = tmp_path / "nb01"
    proc = subprocess.run(["make", "-s", "notebook", "NB=notebooks/01_dirac_pair_bridge.py",
                           f"P=-p NFE 12 -p N_PATHS 500 -p OUTPUT_DIR {out}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
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
    proc = subprocess.run(["make", "-s", "notebook", "NB=notebooks/01_dirac_pair_bridge.py", "P=-p NFEE 5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "unknown parameter NFEE (did you mean NFE?)" in proc.stderr, proc.stderr[-2000:]
    assert "Error 2" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
