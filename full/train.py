"""Train P-I2SB at 512² on FFHQ: one entry point for one process, one node of N GPUs, or many nodes.

    python full/train.py e-cat data=/data/ffhq512 run_dir=runs/e-cat
    torchrun --nproc_per_node 8 full/train.py e-cat data=/data/ffhq.zip
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id RUN \\
        full/train.py e-cat data=/data/ffhq.zip
    python full/train.py e-cat data=/data/ffhq512 --resume          # continue the run in run_dir

CONFIG is a YAML file or the name of one in full/configs/ (a-vanilla, b-lq, c-lq-da,
d-noise, e-cat, f-res: P-I2SB Table 3; cat, res, noise: Fig. 3b; estimator: the
degradation estimator that full/restore.py --estimator uses for da models; prior: the VP
diffusion prior that full/restore.py --prior uses to decode Noise-I2SB), followed by any
key=value overrides (full/config.py lists the keys; the paper's hyper-parameters are the
defaults). The resolved config is saved as run_dir/config.yaml.

Everything runs through pi2sb_lab.train.training_loop: DDP with EMA on every rank,
gradient accumulation, bf16 autocast on CUDA, atomic checkpoints and exact resume (the
step counter seeds every random stream, the eq. 19 draws included). The data are decoded
to uint8 in DataLoader workers and degraded batched on the training device. TensorBoard
(run_dir/tensorboard): loss, lr, grad norm, images/s, skipped files; every image_every
steps a grid LQ | restored by the EMA model | HQ (also saved as run_dir/grids/*.png); for the
estimator, the EMA model's mean absolute error of the vector on that fixed batch instead; for
the prior, faces sampled by DDIM from fixed noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python full/train.py, torchrun): make `full` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from full.checks import check_train  # noqa: E402
from full.common import degrade_fn_of, estimator_of, prior_of, recipe_of  # noqa: E402
from full.config import ConfigError, FullConfig, degradation_config, load_config, save_config  # noqa: E402
from pi2sb_lab import dist  # noqa: E402
from pi2sb_lab.checkpoint import latest_checkpoint, step_of  # noqa: E402
from pi2sb_lab.data.images import ImageFolder, to_float  # noqa: E402
from pi2sb_lab.diffusion import VPObjective, VPSchedule, ddim  # noqa: E402
from pi2sb_lab.preflight import argparse_errors  # noqa: E402
from pi2sb_lab.recipe import Recipe  # noqa: E402
from pi2sb_lab.train import SupervisedObjective, TrainState, training_loop  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a YAML file, or a name in full/configs/ (e.g. e-cat)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings that replace the file's")
    parser.add_argument("--resume", action="store_true", help="continue the run in run_dir from its last checkpoint")
    return parser


def resolve(argv: list[str] | None) -> tuple[FullConfig, bool]:
    """Parse and check everything that can be checked before joining the process group (exit 2 on errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        parser.error(str(err))
    scale_hi = degradation_config(cfg).scale_range[1]
    if cfg.model != "prior" and cfg.image_size / scale_hi < 12 and int(os.environ.get("RANK", 0)) == 0:
        print(f"warning: degradation={cfg.degradation!r} downsamples {cfg.image_size}² images by up to "
              f"{scale_hi:g}× ({cfg.image_size / scale_hi:.0f} px left); for small images use a small-image "
              "preset (photo64, face32) or scale_range=[lo,hi]", file=sys.stderr)
    with argparse_errors(parser):
        check_train(cfg, args.resume)
    return cfg, args.resume


class Monitor:
    """The training loop's callback: TensorBoard scalars every ``log_every`` steps, image grids every
    ``image_every``; the skipped-file count is gathered from all ranks (a collective, so every rank calls).
    ``recipe``: the bridge being trained (its grids restore with it), None for the helper networks."""

    def __init__(self, cfg: FullConfig, dataset: ImageFolder, run_dir: Path, start_step: int,
                 recipe: Recipe | None = None) -> None:
        self.cfg, self.dataset, self.run_dir, self.recipe = cfg, dataset, run_dir, recipe
        self.writer = None
        if dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides the events a killed run wrote after its last checkpoint; those of the
            # checkpoint's own step stay (purge_step drops steps >= it; the loop is not re-run there).
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.last_time, self.last_samples, self.last_logged = time.perf_counter(), None, start_step
        self.preview = self._preview_batch()

    def _preview_batch(self):
        """A fixed batch for the grids: the first ``image_rows`` files, degraded from a fixed seed."""
        n = min(self.cfg.image_rows, len(self.dataset))
        x = torch.stack([self.dataset[i] for i in range(n)])
        g = torch.Generator().manual_seed(self.cfg.seed + 1)
        return degrade_fn_of(self.cfg)(x, g)

    def __call__(self, state: TrainState) -> None:
        flags = self.dataset.skipped_flags.clone()
        if dist.world_size() > 1:  # the union of what every rank's workers skipped
            flags = dist.all_reduce_max(flags.to(state.device))
        skipped = int(flags.sum())
        if not dist.is_main():
            return
        step, w = state.step, self.writer
        now = time.perf_counter()
        if self.last_samples is not None and now > self.last_time:
            w.add_scalar("train/images_per_s", (state.samples_seen - self.last_samples) / (now - self.last_time), step)
        self.last_time, self.last_samples = now, state.samples_seen
        recent = state.losses[self.last_logged:] or state.losses[-1:]
        self.last_logged = len(state.losses)
        w.add_scalar("train/loss", sum(recent) / len(recent), step)
        w.add_scalar("train/lr", state.lr, step)
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        if grads:  # the last step's gradient (all-reduced, before clipping); zeroed only when the next step starts
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            w.add_scalar("train/grad_norm", float(norm), step)
        w.add_scalar("data/skipped_files", skipped, step)
        if skipped:
            names = [self.dataset.files.names[j] for j in flags.nonzero().flatten().tolist()]
            (self.run_dir / "skipped_files.txt").write_text("".join(n + "\n" for n in names))
        if step % self.cfg.image_every == 0 or step == self.cfg.total_steps:
            {"bridge": self._grid, "estimator": self._estimator_error, "prior": self._samples}[self.cfg.model](state)
        w.flush()

    @torch.no_grad()
    def _estimator_error(self, state: TrainState) -> None:
        _, y, params = self.preview
        error = (state.ema.predict(y.to(state.device)).cpu() - params).abs().mean()
        self.writer.add_scalar("preview/param_mae", float(error), state.step)

    @torch.no_grad()
    def _samples(self, state: TrainState) -> None:
        x = self.preview[0]
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(self.cfg.seed + 1)).to(state.device)
        faces = ddim(state.ema, noise, VPSchedule(), nfe=self.cfg.image_nfe, clip_x0=1.0).x0
        self._save_grid(torch.cat([faces.float().cpu(), x.float()]), nrow=x.shape[0], state=state,
                        tag="preview/ddim_samples_then_hq")

    def _save_grid(self, images: torch.Tensor, nrow: int, state: TrainState, tag: str) -> None:
        from torchvision.utils import make_grid, save_image

        grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2)
        self.writer.add_image(tag, grid, state.step)
        (self.run_dir / "grids").mkdir(exist_ok=True)
        save_image(grid, self.run_dir / "grids" / f"step_{state.step:09d}.png")

    @torch.no_grad()
    def _grid(self, state: TrainState) -> None:
        x, y, params = (t.to(state.device) for t in self.preview)
        cfg = self.cfg
        result = self.recipe.restore(state.ema, y, nfe=cfg.image_nfe, ot_ode=cfg.ot_ode, eta=cfg.eta,
                                     degradation=params, seed=cfg.seed, clamp=(-1, 1))
        # LQ | EMA restored | HQ per row (Noise-I2SB shows its x̂: no prior while training)
        rows = torch.stack([y, result.x.to(y.dtype), x], dim=1).flatten(0, 1)
        self._save_grid(rows.float().cpu(), nrow=3, state=state, tag="preview/lq_restored_hq")


def main(argv: list[str] | None = None) -> int:
    cfg, resume = resolve(argv)
    device = dist.init(cfg.device)
    try:
        dataset = ImageFolder(cfg.data, cfg.image_size)
        run_dir = Path(cfg.run_dir)
        start = step_of(ckpt) if resume and (ckpt := latest_checkpoint(run_dir)) is not None else 0
        if dist.is_main():
            save_config(cfg, run_dir / "config.yaml")
            announce(cfg, len(dataset), device)
        recipe = recipe_of(cfg) if cfg.model == "bridge" else None  # the one place full/ builds its bridge
        monitor = Monitor(cfg, dataset, run_dir, start, recipe)
        model, pair_fn, task = what_is_trained(cfg, recipe)
        settings = cfg.train_settings(device=str(device), num_workers=worker_count(cfg.num_workers), resume=resume)
        result = training_loop(settings, model=model, dataset=dataset, pair_fn=pair_fn, **task, callback=monitor,
                               config=cfg.as_dict(), fingerprint={"variant": cfg.variant})  # another variant's
        if monitor.writer is not None:                                                      # run_dir is refused
            monitor.writer.close()
        skipped = monitor.dataset.skipped()
        dist.print0(f"done: {result.steps} steps, {result.samples_seen} samples, last loss "
                    f"{result.losses[-1]:.4g}; {len(skipped)} unreadable file(s) skipped on rank 0; run in {run_dir}")
    finally:
        dist.cleanup()
    return 0


def announce(cfg: FullConfig, images: int, device: torch.device) -> None:
    """One line on rank 0: what is trained, on how much data, and how the global batch splits."""
    what = {"bridge": f"{cfg.strategy} hashing, condition {cfg.conditioning}, net {cfg.net}",
            "estimator": f"degradation estimator, width {cfg.estimator_width}",
            "prior": f"VP diffusion prior, net {cfg.net}"}[cfg.model]
    dist.print0(f"{cfg.variant}: {what} at "
                f"{cfg.image_size}², {images} images, world {dist.world_size()} on {device}, "
                f"global batch {cfg.batch_size} = {dist.world_size()} ranks × {cfg.grad_accum} rounds × "
                f"{cfg.batch_size // max(1, dist.world_size() * cfg.grad_accum)}")


def what_is_trained(cfg: FullConfig, recipe: Recipe | None) -> tuple:
    """(model, pair_fn, objective arguments of training_loop) for ``cfg.model`` (``recipe``: the bridge's)."""
    if cfg.model == "bridge":
        return recipe.network(cfg.seed), recipe.degrade_pair_fn(degrade_fn_of(cfg)), {"schedule": recipe.bridge}
    if cfg.model == "estimator":  # regresses the eq. 19 vector of each on-the-fly draw from its LQ image
        degrade_fn = degrade_fn_of(cfg)
        pair_fn = lambda x, generator: degrade_fn(x, generator)[1:]  # noqa: E731  (y, vector)
        loss = SupervisedObjective(lambda m, y, vector: torch.nn.functional.mse_loss(m(y), vector), "estimator")
        return estimator_of(cfg), pair_fn, {"objective": loss}
    # the prior, Noise-I2SB's decoder: an unconditional VP diffusion on the HQ faces alone
    pair_fn = lambda x, generator: (to_float(x) if x.dtype == torch.uint8 else x,)  # noqa: E731
    return prior_of(cfg), pair_fn, {"objective": VPObjective(VPSchedule())}


def worker_count(requested: int) -> int:
    """``requested`` DataLoader workers, at most this rank's share of the CPU cores minus its own one
    (more re-spawn and compete with the training threads: 1.3 s/step against 0.78 s/step on 2 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    workers = min(requested, max(0, share - 1))
    if workers != requested:
        dist.print0(f"num_workers={requested} lowered to {workers}: this rank has {workers + 1} CPU core(s)")
    return workers


if __name__ == "__main__":
    sys.exit(main())
