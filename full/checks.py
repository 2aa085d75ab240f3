"""full/train.py's checks before it joins the process group or writes a file (pi2sb_lab.preflight's for a run).

Everything that would otherwise fail after ``run_dir`` was made — an empty or non-image
``data``, a setting ``training_loop`` refuses, a GPU that is not there, a ``--resume`` into
another variant's folder — fails here with :class:`~pi2sb_lab.preflight.PreflightError`,
so a refused start leaves nothing behind and the corrected rerun is not blocked.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pi2sb_lab.checkpoint import latest_checkpoint
from pi2sb_lab.preflight import PreflightError, check_apart, check_decodes, check_device, check_images, check_out_dir

from .config import FullConfig

# What makes a run this run: a --resume that changes one of these is another run (its config.yaml is kept).
IDENTITY = ("model", "variant", "strategy", "conditioning", "net", "image_size", "degradation", "beta_min", "beta_max",
            "ot_ode", "noise_level", "estimator_width", "seed")


def check_train(cfg: FullConfig, resume: bool) -> None:
    """Every setting, path and device of a training run, before anything is written."""
    if not cfg.data:
        raise PreflightError("data is not set: add data=/path/to/ffhq (a folder or a .zip of PNG/JPEG faces)")
    check_device(cfg.device, "device=")
    run_dir = check_out_dir(cfg.run_dir, "run_dir=")
    files = check_images(Path(cfg.data), cfg.image_size, "data=")
    check_decodes(files, "data=")
    check_apart({"data=": Path(cfg.data)}, run_dir, "run_dir=")
    held = latest_checkpoint(run_dir) is not None or (run_dir / "config.json").exists()
    if held and not resume:
        raise PreflightError(f"run_dir={cfg.run_dir!r} already holds a run: pass --resume to continue it, "
                             "or choose another run_dir")
    if resume:
        check_same_run(cfg, run_dir / "config.yaml")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.batch_size % (world * cfg.grad_accum):
        raise PreflightError(f"batch_size={cfg.batch_size} must be a multiple of world size × grad_accum = "
                             f"{world} × {cfg.grad_accum} (each rank's micro-batches are equal)")
    micro = cfg.batch_size // (world * cfg.grad_accum)
    if len(files) // world < micro:  # every rank's shard of the data must hold one micro-batch
        largest = (len(files) // world) * world * cfg.grad_accum
        raise PreflightError(f"batch_size={cfg.batch_size} needs {micro} images per rank per micro-batch, but "
                             f"data={cfg.data!r} holds {len(files)} image(s) for {world} rank(s)"
                             + (f": use batch_size <= {largest}" if largest else ""))
    try:  # the training loop's own checks, run now instead of after the run folder exists
        cfg.train_settings(resume=resume)
    except (ValueError, TypeError) as err:
        raise PreflightError(str(err)) from None


def check_same_run(cfg: FullConfig, saved: Path) -> None:
    """``--resume`` continues the run whose ``config.yaml`` is ``saved`` only with the same identity
    (:data:`IDENTITY`); another variant's folder is refused before its config.yaml is touched."""
    if not saved.is_file():
        return
    try:
        earlier = yaml.safe_load(saved.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise PreflightError(f"--resume: {saved} is unreadable ({type(err).__name__}); move the run aside") from None
    mine = cfg.as_dict()
    differ = [f"{k}={earlier.get(k)!r} there, {mine[k]!r} now" for k in IDENTITY
              if isinstance(earlier, dict) and k in earlier and earlier[k] != mine[k]]
    if differ:
        raise PreflightError(f"--resume into run_dir={cfg.run_dir!r}: that run differs in {'; '.join(differ)}; "
                             "resume it with its own config, or choose another run_dir (nothing was written)")
