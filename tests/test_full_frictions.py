"""What made a small full/ run fail (issue 15), each fixed: EMA ramp-up, workers vs cores, batch vs data
checked before run_dir is written, the estimator's size check, small-image presets and eq. 19 overrides,
TensorBoard after --resume, and restore.py refusing to mix checkpoints in one output folder."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from full import restore as restore_cli
from full import train as train_cli
from full.config import ConfigError, degradation_config, load_config
from pi2sb_lab import dist
from pi2sb_lab.data.images import ImageFolder
from pi2sb_lab.train import EMA
from photos import photo_folder

ROOT = Path(__file__).resolve().parents[1]
TINY = ["net=tiny", "image_size=32", "batch_size=2", "log_every=1", "image_rows=1", "image_nfe=1",
        "progress=false", "device=cpu", "num_workers=0", "degradation=face32"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    photo_folder(folder, n=4, size=32)
    return folder


def test_ema_rampup_half_life_is_a_fraction_of_the_updates_so_far():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9999, rampup=0.05)
    for n in (0, 19, 99, 999):
        ema.num_updates = n
        half_life = 0.05 * (n + 1)  # the average halves its distance to a constant model in this many updates
        assert math.isclose(ema.current_decay() ** half_life, 0.5, rel_tol=1e-12), (n, ema.current_decay())
    ema.num_updates = 10**7
    assert ema.current_decay() == 0.9999, "the ramp-up never exceeds the decay asked for"
    # A short run: the weights jump to 1 and stay; 500 updates later the ramped average is there, the plain
    # one still holds 95 % of the initial weights (0.9999^500).
    ramped, plain = EMA(model, 0.9999, rampup=0.05), EMA(model, 0.9999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(500):
        ramped.update(model)
        plain.update(model)
    assert ramped.ema_model.weight.item() > 0.999, ramped.ema_model.weight.item()
    assert plain.ema_model.weight.item() < 0.05, plain.ema_model.weight.item()
    with pytest.raises(ValueError, match="rampup"):
        EMA(model, 0.99, rampup=-1.0)


def test_workers_at_most_the_cores_of_a_rank_and_persistent(monkeypatch, faces):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert train_cli.worker_count(4) == 0  # 2 cores for 2 ranks: each rank decodes in its own process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert train_cli.worker_count(4) == 1 and train_cli.worker_count(0) == 0
    loader = dist.make_loader(ImageFolder(faces, 32), 2, num_workers=1)
    assert loader.persistent_workers, "workers are re-spawned every epoch"


@pytest.mark.parametrize("args, message", [
    (["batch_size=64"], "batch_size=64 needs 64 images per rank per micro-batch, but data="),
    (["batch_size=3", "grad_accum=2"], "batch_size=3 must be a multiple of world size × grad_accum = 1 × 2"),
    (["sigma_range=[2,1]"], "sigma_range must be (lo, hi) with lo <= hi"),
    (["scale_range=3"], "scale_range=3 must be a pair [lo, hi] of floats or null"),
])
def test_bad_settings_are_refused_before_run_dir_is_written(faces, tmp_path, capsys, args, message):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["a-vanilla", f"data={faces}", f"run_dir={run_dir}", *TINY, *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not run_dir.exists(), "a refused run wrote its run_dir (the corrected rerun would be refused)"


def test_estimator_needs_no_unet_divisibility_and_presets_take_overrides():
    assert load_config("estimator", ["image_size=36"]).image_size == 36
    with pytest.raises(ConfigError, match="divisible by 64 for net='adm512'"):
        load_config("e-cat", ["image_size=36"])
    cfg = load_config("e-cat", ["degradation=photo64", "sigma_range=[0.5, 2]", "jpeg_range=[40, 90]",
                                "gray_prob=0.5"])
    deg = degradation_config(cfg)
    assert (deg.sigma_range, deg.jpeg_range, deg.gray_prob, deg.kernel_size) == ((0.5, 2.0), (40, 90), 0.5, 11)
    assert degradation_config(load_config("e-cat", ["degradation=face32"])).scale_range == (1.0, 2.0)
    with pytest.raises(ConfigError, match="jpeg_range.*pair"):
        load_config("e-cat", ["jpeg_range=[40.5, 90]"])


def test_small_image_with_ffhq512_warns(faces, tmp_path, capsys):
    with pytest.raises(SystemExit):  # stopped by a later check; the warning comes first
        train_cli.main(["a-vanilla", f"data={faces}", f"run_dir={tmp_path / 'r'}", *TINY, "degradation=ffhq512",
                        "batch_size=64"])
    assert "downsamples 32² images by up to 8× (4 px left)" in capsys.readouterr().err


def run_train(faces, run_dir, steps, resume=False):
    cmd = [sys.executable, "full/train.py", "a-vanilla", f"data={faces}", f"run_dir={run_dir}",
           f"total_steps={steps}", "checkpoint_every=2", "image_every=2", *TINY] + (["--resume"] if resume else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_resume_keeps_tensorboard_events_of_the_resume_step_and_restore_refuses_to_mix(faces, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from full import make_testset

    run_dir = tmp_path / "run"
    run_train(faces, run_dir, 2)
    make_testset.main([str(faces), str(tmp_path / "set"), "--size", "32", "--preset", "face32", "--limit", "2"])
    lq, out = str(tmp_path / "set" / "lq"), tmp_path / "restored"
    assert restore_cli.main([str(run_dir), lq, str(out), "--nfe", "1"]) == 0
    assert json.loads((out / "restore.json").read_text())["step"] == 2

    run_train(faces, run_dir, 4, resume=True)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [i.step for i in events.Images("preview/lq_restored_hq")] == [2, 4]

    (out / "img_001.png").unlink()  # a rerun after more training would fill the gap with the new checkpoint
    with pytest.raises(SystemExit) as exit_info:
        restore_cli.main([str(run_dir), lq, str(out), "--nfe", "1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "holds images restored with other settings" in err \
        and "step: 2 there, 4 now" in err
    assert not (out / "img_001.png").exists()
    assert restore_cli.main([str(run_dir / "checkpoint-000000002.pt"), lq, str(out), "--nfe", "1"]) == 0
    assert (out / "img_001.png").is_file() and json.loads((out / "restore.json").read_text())["complete"]
