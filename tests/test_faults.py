"""Faults, for real and bounded in time: ``kill -9`` mid-step and mid-checkpoint-write, a rank that raises
under torchrun, an image that does not decode.

Each run is a subprocess of tests/fault_worker.py (a 2D bridge, 10 steps, batch 16 in 2 micro-batches,
dropout on, a checkpoint every 2 steps, the last 2 kept). What must hold:

* after ``kill -9`` the newest complete checkpoint loads, and the resumed run's losses, weights and EMA
  equal an uninterrupted run's bit for bit (the step counter is the RNG state, see train.py);
* a rank that raises makes torchrun end every rank with a non-zero exit code within
  ``DIST_EXIT_LIMIT`` seconds of the failure: nothing waits forever in a collective;
* an image that does not decode is skipped and counted by ``data.images.ImageFolder``, in worker
  processes, and never ends the epoch.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pi2sb_lab.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "fault_worker.py"
STEPS = 10
DIST_EXIT_LIMIT = 60.0  # seconds from the failing rank's raise to torchrun's exit (measured: ~5 s on 2 busy cores)
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def run_worker(folder: Path, *flags: str) -> dict:
    """Run the worker to the end in ``folder``/run; return its result.pt."""
    proc = subprocess.run([sys.executable, str(WORKER), str(folder / "run"), str(STEPS), *flags], env=_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(folder / "result.pt", weights_only=True)


def kill_when_hanging(folder: Path, *flags: str) -> None:
    """Start the worker, wait for it to reach its hanging point, and SIGKILL it there."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder / "run"), str(STEPS), *flags], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "hanging").exists():
            assert proc.poll() is None, f"the worker ended before its hanging point:\n{proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the worker never reached its hanging point"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    (folder / "hanging").unlink()


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The uninterrupted run every faulted one is compared with."""
    return run_worker(tmp_path_factory.mktemp("straight"))


def assert_bitwise_equal(resumed: dict, straight: dict) -> None:
    assert resumed["steps"] == straight["steps"] == STEPS
    assert resumed["losses"] == straight["losses"], "the resumed run's losses differ from the uninterrupted run's"
    for part in ("model", "ema"):
        for name, value in straight[part].items():
            assert torch.equal(resumed[part][name], value), f"{part}.{name} differs"


def test_kill_9_mid_step_resumes_bit_for_bit(tmp_path, straight):
    kill_when_hanging(tmp_path, "--hang-at-step", "7")
    run = tmp_path / "run"
    assert [load_checkpoint(p).step for p in list_checkpoints(run)] == [4, 6]
    previous = load_checkpoint(latest_checkpoint(run))
    assert previous.step == 6 and previous.parts["losses"].tolist() == straight["losses"][:6]
    resumed = run_worker(tmp_path, "--resume")
    assert_bitwise_equal(resumed, straight)


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, straight):
    kill_when_hanging(tmp_path, "--hang-in-save", "3")  # the third write: step 6's checkpoint
    run = tmp_path / "run"
    partial = list(run.glob(".checkpoint-000000006.pt.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0, "the write was not caught half-way"
    assert [load_checkpoint(p).step for p in list_checkpoints(run)] == [2, 4]  # the half file is never listed
    assert load_checkpoint(latest_checkpoint(run)).step == 4
    resumed = run_worker(tmp_path, "--resume")
    assert_bitwise_equal(resumed, straight)
    assert not list(run.glob(".checkpoint-*.tmp")), "the stale temporary file was not cleaned up"
    rows = (run / "log.jsonl").read_text().splitlines()
    assert [int(re.search(r'"step": (\d+)', r)[1]) for r in rows] == [2, 4, 6, 8, 10]  # no row twice


def test_a_rank_that_raises_ends_every_rank_non_zero(tmp_path):
    """Two gloo processes under torchrun; rank 1 raises in step 3 while rank 0 goes on into the step's
    gradient all-reduce. torchrun must end both, non-zero, well within DIST_EXIT_LIMIT."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path / "run"), str(STEPS), "--raise-on-rank", "1"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    ended = time.time()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "rank 1 fails on purpose in step 3" in output, output[-3000:]
    exit_after = ended - float((tmp_path / "failed-at").read_text())
    print(f"torchrun exited {exit_after:.1f} s after rank 1 raised (return code {proc.returncode})")
    assert exit_after < DIST_EXIT_LIMIT, f"{exit_after:.1f} s from the failure to the exit"
    # torchrun's failure report names every rank with its exit code: both non-zero.
    codes = dict(re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)", output))
    assert set(codes) == {"0", "1"} and all(int(c) != 0 for c in codes.values()), (codes, output[-3000:])
    for rank in (0, 1):  # and no process is left behind
        pid = int((tmp_path / f"pid-rank{rank}").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "result.pt").exists()


def test_a_rank_that_hangs_is_ended_by_the_collective_timeout(tmp_path):
    """Rank 1 sleeps in step 3 (a stuck data read, a deadlock): rank 0 waits in the gradient all-reduce
    until PI2SB_COLLECTIVE_TIMEOUT_S, raises, and torchrun ends both, non-zero."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path / "run"), str(STEPS), "--hang-on-rank", "1"]
    proc = subprocess.run(cmd, env={**_env(), "PI2SB_COLLECTIVE_TIMEOUT_S": "5"}, capture_output=True, text=True,
                          timeout=240)
    ended = time.time()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    exit_after = ended - float((tmp_path / "failed-at").read_text())
    print(f"torchrun exited {exit_after:.1f} s after rank 1 hung (collective timeout 5 s)")
    assert 5 <= exit_after < DIST_EXIT_LIMIT, f"{exit_after:.1f} s from the hang to the exit"
    for rank in (0, 1):  # no process is left behind, the sleeping one included
        pid = int((tmp_path / f"pid-rank{rank}").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_bad_collective_timeout_is_named(monkeypatch):
    from pi2sb_lab import dist

    for bad in ("0", "soon", "inf"):
        monkeypatch.setenv(dist.TIMEOUT_VAR, bad)
        with pytest.raises(RuntimeError, match=f"PI2SB_COLLECTIVE_TIMEOUT_S must be a number of seconds > 0; "
                                               f"got '{bad}'"):
            dist._timeout()
    monkeypatch.setenv(dist.TIMEOUT_VAR, "2.5")
    assert dist._timeout() == {"timeout": datetime.timedelta(seconds=2.5)}


def test_an_image_that_does_not_decode_is_skipped_and_counted(tmp_path):
    """A truncated PNG and a text file named .jpg in a folder of good images: two DataLoader worker
    processes read the folder; every batch stays full, both bad files are counted, none is fatal."""
    from PIL import Image

    from pi2sb_lab import dist
    from pi2sb_lab.data import images

    folder = tmp_path / "faces"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(10):
        pixels = torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    good = (folder / "03.png").read_bytes()
    (folder / "03.png").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "07.jpg").write_text("not an image")
    dataset = images.ImageFolder(folder, size=16)
    dist.cleanup()
    dist.init("cpu")
    try:
        loader = dist.make_loader(dataset, 4, shuffle=False, num_workers=2, drop_last=False)
        loader.sampler.set_epoch(0)
        batches = list(loader)
    finally:
        dist.cleanup()
    assert sum(b.shape[0] for b in batches) == len(dataset) == 11
    assert all(b.dtype == torch.uint8 and b.shape[1:] == (3, 16, 16) for b in batches)
    assert sorted(dataset.skipped()) == ["03.png", "07.jpg"]
