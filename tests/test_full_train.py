"""full/train.py and full/restore.py on CPU: torchrun with 2 processes (gloo), two "nodes" on localhost,
kill and resume, a corrupt image, restore → evaluate end to end, and bad arguments.

Everything is tiny: the "tiny" U-Net at 32², 8 crops of scikit-image's bundled photographs.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from full import restore as restore_cli
from full import train as train_cli
from pi2sb_lab.checkpoint import latest_checkpoint, load_checkpoint
from pi2sb_lab.data.images import ImageFiles
from photos import photo_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["net=tiny", "image_size=32", "batch_size=4", "log_every=1", "checkpoint_every=2", "image_rows=2",
        "image_nfe=2", "progress=false", "device=cpu"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def run(cmd: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "log.jsonl").read_text().splitlines()]


def level_difference(a: Path, b: Path) -> tuple[list[str], int]:
    """The PNG names of folders ``a`` and ``b`` (which must agree) and the largest 8-bit difference between them."""
    first, second = ImageFiles(a, 32), ImageFiles(b, 32)
    assert first.names == second.names, (first.names, second.names)
    return first.names, max((first.read(i).int() - second.read(i).int()).abs().max().item() for i in range(len(first)))


def ema_weights(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir)).parts["ema"]["model"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """8 photo crops at 32², one of them truncated (it must be skipped and counted, never fatal)."""
    folder = tmp_path_factory.mktemp("ffhq")
    photo_folder(folder, n=8, size=32, jpeg_every=3)
    data = (folder / "img_003.png").read_bytes()
    (folder / "img_003.png").write_bytes(data[: len(data) // 3])
    return folder


@pytest.fixture(scope="module")
def two_process_run(faces, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """torchrun --standalone --nproc_per_node 2: 4 steps of Cat-I2SB (lq+da) with one DataLoader worker each."""
    run_dir = tmp_path_factory.mktemp("runs") / "one-node"
    proc = run(torchrun("--standalone", "--nproc_per_node", "2", "full/train.py", "e-cat", f"data={faces}",
                        f"run_dir={run_dir}", "total_steps=4", "image_every=4", "num_workers=1", *TINY))
    return run_dir, proc


def test_torchrun_two_processes_train_and_write_checkpoints_tensorboard_and_grids(two_process_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, proc = two_process_run
    assert "world 2 on cpu" in proc.stdout and "done: 4 steps, 16 samples" in proc.stdout, proc.stdout
    values = losses(run_dir)
    assert len(values) == 4 and all(torch.isfinite(torch.tensor(values))), values
    assert sorted(p.name for p in run_dir.glob("checkpoint-*.pt")) == ["checkpoint-000000002.pt",
                                                                        "checkpoint-000000004.pt"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "grids" / "step_000000004.png").is_file()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "train/images_per_s", "data/skipped_files"} <= \
        set(tags["scalars"]) and tags["images"] == ["preview/lq_restored_hq"]
    assert [round(s.value, 6) for s in events.Scalars("train/loss")] == [round(v, 6) for v in values]
    # The truncated face was skipped, counted (union over both ranks' workers) and listed.
    assert events.Scalars("data/skipped_files")[-1].value == 1
    assert (run_dir / "skipped_files.txt").read_text() == "img_003.png\n"


def test_two_nodes_give_the_loss_sequence_of_one_node_with_two_processes(faces, two_process_run, tmp_path):
    one_node, _ = two_process_run
    run_dir = tmp_path / "two-nodes"
    port = free_port()
    launchers = [subprocess.Popen(
        torchrun("--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                 f"127.0.0.1:{port}", "--rdzv-id", "two-nodes-test", "full/train.py", "e-cat", f"data={faces}",
                 f"run_dir={run_dir}", "total_steps=4", "image_every=4", "num_workers=1", *TINY),
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert losses(run_dir) == losses(one_node), (losses(run_dir), losses(one_node))
    a, b = ema_weights(run_dir), ema_weights(one_node)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def single_run(faces, tmp_path_factory) -> Path:
    """An uninterrupted single-process run of Res-I2SB (lq+da), 8 steps."""
    run_dir = tmp_path_factory.mktemp("runs") / "uninterrupted"
    run([sys.executable, "full/train.py", "f-res", f"data={faces}", f"run_dir={run_dir}", "total_steps=8",
         "image_every=8", "num_workers=0", *TINY])
    return run_dir


def test_kill_and_resume_equals_an_uninterrupted_run(faces, single_run, tmp_path):
    run_dir = tmp_path / "killed"
    args = [sys.executable, "full/train.py", "f-res", f"data={faces}", f"run_dir={run_dir}", "total_steps=8",
            "image_every=8", "num_workers=0", *TINY]
    proc = subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while latest_checkpoint(run_dir) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no clean-up of any kind, as a node failure
    proc.wait()
    killed_at = load_checkpoint(latest_checkpoint(run_dir)).step
    assert proc.returncode == -signal.SIGKILL and killed_at < 8, f"the run ended (step {killed_at}) before the kill"
    run(args + ["--resume"])
    assert losses(run_dir) == losses(single_run), (killed_at, losses(run_dir), losses(single_run))
    a, b = ema_weights(run_dir), ema_weights(single_run)
    assert all(torch.equal(a[k], b[k]) for k in a), f"EMA weights differ after resuming from step {killed_at}"


def test_restore_then_evaluate_end_to_end_under_torchrun(faces, single_run, tmp_path):
    from full import evaluate, make_testset
    from photos import fake_lpips_backbone

    make_testset.main([str(faces), str(tmp_path / "set"), "--size", "32", "--limit", "5"])  # 4 readable + 1 bad
    out = tmp_path / "restored"
    (tmp_path / "set" / "lq" / "zz_broken.png").write_text("not an image")
    run(torchrun("--standalone", "--nproc_per_node", "2", "full/restore.py", str(single_run),
                 str(tmp_path / "set" / "lq"), str(out), "--nfe", "2", "--batch-size", "2", "--params",
                 str(tmp_path / "set" / "params"), "--device", "cpu"))
    assert sorted(p.name for p in out.glob("*.png")) == ["img_000.png", "img_001.png", "img_002.png", "img_004.png"]
    record = json.loads((out / "restore.json").read_text())
    assert record["restored_now"] == 4 and record["weights"] == "ema" and record["step"] == 8
    assert (out / "skipped.txt").read_text().startswith("zz_broken.png: cannot decode")
    # A rerun skips what is finished (and a missing output is redone).
    (out / "img_001.png").unlink()
    assert restore_cli.main([str(single_run), str(tmp_path / "set" / "lq"), str(out), "--nfe", "2", "--params",
                             str(tmp_path / "set" / "params")]) == 0
    assert json.loads((out / "restore.json").read_text())["restored_now"] == 1 and (out / "img_001.png").is_file()
    # Each image's noise is seeded by its name: one process at batch 3 gives what 2 ranks at batch 2 gave.
    assert restore_cli.main([str(single_run), str(tmp_path / "set" / "lq"), str(tmp_path / "again"), "--nfe", "2",
                             "--batch-size", "3", "--params", str(tmp_path / "set" / "params")]) == 0
    _, worst = level_difference(out, tmp_path / "again")
    assert worst <= 1, f"restorations depend on the batch: up to {worst} levels apart"
    os.environ["TORCH_HOME"] = str(tmp_path / "torch_home")
    try:
        fake_lpips_backbone(tmp_path / "torch_home")
        assert evaluate.main([str(out), "--hq", str(tmp_path / "set" / "hq"), "--metrics", "psnr,ssim,lpips,fid",
                              "--lpips-net", "squeeze", "--fid-features", "photos:tiny_features"]) == 0
    finally:
        del os.environ["TORCH_HOME"]
    m = json.loads((tmp_path / "restored_metrics" / "metrics.json").read_text())
    assert m["images"] == 4 and 0 < m["metrics"]["psnr"] < 60 and 0 < m["metrics"]["ssim"] <= 1, m["metrics"]
    # Sharded over two ranks, the same table to the last digit (features are put back in the listing's order).
    run(torchrun("--standalone", "--nproc_per_node", "2", "full/evaluate.py", str(out), "--hq",
                 str(tmp_path / "set" / "hq"), "--metrics", "psnr,ssim,fid", "--fid-features", "photos:tiny_features",
                 "--out", str(tmp_path / "sharded"), "--device", "cpu"))
    sharded = json.loads((tmp_path / "sharded" / "metrics.json").read_text())
    assert sharded["settings"]["world_size"] == 2 and sharded["images"] == 4
    assert all(sharded["metrics"][k] == m["metrics"][k] for k in ("psnr", "ssim", "fid")), (sharded, m)


def test_estimator_trains_and_gives_restore_the_da_vectors(faces, single_run, tmp_path, capsys):
    """`full/train.py estimator`: the degradation estimator through the same loop and data; restore.py
    --estimator then conditions a da model on its predictions (real-world faces have no true draw)."""
    from full import make_testset

    est = tmp_path / "estimator"
    run([sys.executable, "full/train.py", "estimator", f"data={faces}", f"run_dir={est}", "total_steps=4",
         "image_every=4", "num_workers=0", *TINY])
    ckpt = load_checkpoint(latest_checkpoint(est))
    assert ckpt.step == 4 and ckpt.config["extra"]["model"] == "estimator"
    assert len(losses(est)) == 4 and all(0 <= v < 1 for v in losses(est)), losses(est)  # MSE of [0, 1] vectors
    assert list((est / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard events"
    make_testset.main([str(faces), str(tmp_path / "set"), "--size", "32", "--limit", "3"])
    out = tmp_path / "restored"
    assert restore_cli.main([str(single_run), str(tmp_path / "set" / "lq"), str(out), "--nfe", "2",
                             "--estimator", str(est)]) == 0
    record = json.loads((out / "restore.json").read_text())
    assert record["restored_now"] == 3 and record["da"].startswith("estimated by"), record
    assert sorted(p.name for p in out.glob("*.png")) == ["img_000.png", "img_001.png", "img_002.png"]
    # The estimator is not a bridge: given as the checkpoint to restore with, it is refused.
    with pytest.raises(SystemExit) as exit_info:
        restore_cli.main([str(est), str(tmp_path / "set" / "lq"), str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "is of model='estimator'" in capsys.readouterr().err


def test_prior_trains_and_decodes_noise_i2sb(faces, single_run, tmp_path, capsys):
    """`full/train.py prior`: a VP diffusion on the HQ faces through the same loop; restore.py --prior then
    decodes Noise-I2SB's x̂ with DDIM on it (P-I2SB eq. 18) instead of writing x̂ as it is."""
    from full import make_testset

    prior, noise = tmp_path / "prior", tmp_path / "noise"
    # The U-Net's last layer starts at zero (ε̂ = 0 leaves x̂ as it is): three large steps, and an EMA that
    # follows them (restore.py reads the EMA weights), make a prior whose decode shows.
    run([sys.executable, "full/train.py", "prior", f"data={faces}", f"run_dir={prior}", "total_steps=3",
         "image_every=3", "num_workers=0", "lr=0.02", "ema_decay=0", *TINY])
    assert load_checkpoint(latest_checkpoint(prior)).config["extra"]["model"] == "prior"
    assert all(0 < v < 10 for v in losses(prior)) and list((prior / "grids").glob("*.png")), losses(prior)
    run([sys.executable, "full/train.py", "noise", f"data={faces}", f"run_dir={noise}", "total_steps=2",
         "image_every=2", "num_workers=0", *TINY])
    make_testset.main([str(faces), str(tmp_path / "set"), "--size", "32", "--limit", "2"])
    lq = str(tmp_path / "set" / "lq")
    assert restore_cli.main([str(noise), lq, str(tmp_path / "plain"), "--nfe", "2"]) == 0
    assert restore_cli.main([str(noise), lq, str(tmp_path / "ddim"), "--nfe", "2", "--prior", str(prior),
                             "--prior-nfe", "3"]) == 0
    plain = json.loads((tmp_path / "plain" / "restore.json").read_text())
    ddim = json.loads((tmp_path / "ddim" / "restore.json").read_text())
    assert plain["decode"].startswith("x_hat (no --prior") and "DDIM on" in ddim["decode"], (plain, ddim)
    names, moved = level_difference(tmp_path / "plain", tmp_path / "ddim")
    assert names == ["img_000.png", "img_001.png"]
    assert moved > 0, f"the DDIM decode left x̂ unchanged ({moved} levels)"  # same seeds: only the decode differs
    with pytest.raises(SystemExit) as exit_info:
        restore_cli.main([str(single_run), lq, str(tmp_path / "o"), "--params", str(tmp_path / "set" / "params"),
                          "--prior", str(prior)])
    assert exit_info.value.code == 2 and "--prior decodes Noise-I2SB only" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["e-cat"], "data is not set"),
    (["e-cat", "data={faces}", "lrr=1"], "unknown key 'lrr' (did you mean 'lr'?)"),
    (["e-cat", "data={faces}", "batch_size=two"], "batch_size='two' is a str; expected int"),
    (["nope", "data={faces}"], "no config file 'nope'"),
    (["e-cat", "data={tmp}/missing"], "no such folder or zip"),
    (["e-cat", "data={faces}", "run_dir={run}"], "already holds a run: pass --resume"),
])
def test_train_bad_arguments_exit_2_and_leave_nothing(faces, single_run, tmp_path, capsys, args, message):
    args = [a.format(faces=faces, tmp=tmp_path, run=single_run) for a in args]
    before = sorted(tmp_path.rglob("*")), sorted(single_run.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(args + [f"run_dir={tmp_path / 'new'}"] * ("run_dir" not in " ".join(args)))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (sorted(tmp_path.rglob("*")), sorted(single_run.rglob("*"))) == before


@pytest.mark.parametrize("args, message", [
    (["{run}", "{lq}", "{lq}/out"], "is the input folder or inside it"),
    (["{run}", "{lq}", "{tmp}/o", "--nfe", "0"], "--nfe must be >= 1"),
    (["{run}", "{lq}", "{tmp}/o"], "needs each input's eq. 19 vector: give either --params"),
    (["{run}", "{lq}", "{tmp}/o", "--estimator", "{run}"], "is of model='bridge' (variant f-res); this needs "
                                                           "model='estimator'"),
    (["{tmp}", "{lq}", "{tmp}/o"], "no checkpoint-*.pt in the run folder"),
    (["{run}", "{tmp}/missing", "{tmp}/o"], "does not exist"),
])
def test_restore_bad_arguments_exit_2_and_leave_nothing(faces, single_run, tmp_path, capsys, args, message):
    args = [a.format(run=single_run, lq=faces, tmp=tmp_path) for a in args]
    before = sorted(tmp_path.rglob("*")), sorted(faces.rglob("*"))
    with pytest.raises(SystemExit) as exit_info:
        restore_cli.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (sorted(tmp_path.rglob("*")), sorted(faces.rglob("*"))) == before


def test_train_and_restore_cli_help_and_errors_without_traceback(capsys):
    for module in (train_cli, restore_cli):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0 and "usage:" in capsys.readouterr().out
    proc = subprocess.run([sys.executable, "full/train.py", "e-cat", "lr=abc"], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "lr='abc'" in proc.stderr and "Traceback" not in proc.stderr
