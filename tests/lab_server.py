"""Start `make lab` (or any make target) the way a user does, from a test, and stop it again.

The suite runs inside the project's virtual environment, so make is pointed at that one
(`VENV=<sys.prefix>`, its stamp taken as up to date): a test never creates or reinstalls a venv.
In CI that is the repository's own `.venv`, i.e. exactly what the user's `make lab` runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_command(target: str, *assignments: str) -> list[str]:
    """``make -s TARGET NAME=VALUE…`` against the venv that runs the tests."""
    venv = Path(sys.prefix)
    return ["make", "-s", "-o", str(venv / ".installed"), f"VENV={venv}", target, *assignments]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """``make lab`` on a free localhost port with a token we choose; ``LAB_ROOT`` and extra ``LAB_ARGS`` optional."""

    def __init__(self, *, root: Path | None = None, extra_args: str = "", log: Path | None = None,
                 env: dict | None = None):
        self.port, self.token = free_port(), os.urandom(8).hex()
        args = f"--no-browser --ip=127.0.0.1 --port={self.port} --IdentityProvider.token={self.token} {extra_args}"
        assignments = [f"LAB_ARGS={args.strip()}"] + ([f"LAB_ROOT={root}"] if root is not None else [])
        self.log = log
        out = open(log, "w") if log is not None else subprocess.PIPE
        self.proc = subprocess.Popen(make_command("lab", *assignments), cwd=ROOT, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        body = urllib.request.urlopen(req, timeout=10).read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline, last_err = time.time() + timeout, None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.api("/api/status")
                return
            except OSError as err:  # not up yet
                last_err = err
                time.sleep(1)
        tail = self.log.read_text()[-3000:] if self.log is not None else ""
        raise AssertionError(f"JupyterLab did not answer on port {self.port} within {timeout:.0f} s: {last_err}; "
                             f"exit code {self.proc.poll()}\n{tail}")

    def stop(self) -> None:
        """End the server and everything make started with it (its own process group)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=20)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "LabServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
