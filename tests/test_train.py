"""The training loop on a 2D toy: the loss falls, EMA is exact, resume is exact, counters are right."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pi2sb_lab.checkpoint import CheckpointMismatchError, latest_checkpoint, list_checkpoints, load_checkpoint
from pi2sb_lab.parameterization import EpsParam, X0Param
from pi2sb_lab.schedule import SymmetricSchedule
from pi2sb_lab.train import EMA, NonFiniteLossError, SupervisedObjective, TrainResult, training_loop

SCHEDULE = SymmetricSchedule()


CENTERS = 0.6 * torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
ROTATION = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # 90°


def four_clusters(n: int, seed: int = 0) -> torch.Tensor:
    """Clean 2D points: a mixture of four tight Gaussian clusters."""
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(0, 4, (n,), generator=g)
    return CENTERS[which] + 0.05 * torch.randn(n, 2, generator=g)


def rotate_pairs(x: torch.Tensor, generator: torch.Generator):
    """Degradation of the toy: x1 = x0 rotated by 90° plus noise; no condition."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x)
    return x, x @ ROTATION.T + 0.1 * noise, None


class TinyMLP(nn.Module):
    """model(x_t, t, cond=None): an MLP on (x_t, t, cos πt, sin πt)."""

    def __init__(self, width: int = 64, dropout: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(5, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width),
                                 nn.SiLU(), nn.Linear(width, 2))

    def forward(self, x, t, cond=None):
        t = t.reshape(-1, 1).to(x)
        return self.net(torch.cat([x, t, torch.cos(math.pi * t), torch.sin(math.pi * t)], dim=1))


def train(**overrides) -> TrainResult:
    settings = dict(model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(256), pair_fn=rotate_pairs,
                    batch_size=32, lr=3e-3, ema_decay=0.9, log_every=4, progress=False)
    settings.update(overrides)
    return training_loop(**settings)


def params(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    # torch's max propagates NaN (a generator's max() would skip it unless it came first)
    return torch.stack([(a[k].double() - b[k].double()).abs().max() for k in a]).max().item()


def test_loss_falls_on_the_2d_toy():
    result = train(model=TinyMLP(width=64), dataset=four_clusters(2048), total_steps=300, batch_size=128,
                   log_every=100)
    assert len(result.losses) == 300 and result.steps == 300 and result.samples_seen == 300 * 128
    first, last = sum(result.losses[:50]) / 50, sum(result.losses[-50:]) / 50
    assert last < 0.6 * first, f"loss did not fall: mean of first 50 steps {first:.4f}, of last 50 {last:.4f}"
    assert isinstance(result.model, EpsParam) and isinstance(result.ema, EpsParam)


def test_ema_matches_an_independent_computation():
    decay = 0.9
    theta0 = params(EpsParam(TinyMLP(), SCHEDULE))
    one = train(total_steps=1, ema_decay=decay)
    two = train(total_steps=2, ema_decay=decay)  # same seed: its first step is `one`'s step
    theta1, theta2 = params(one.model), params(two.model)
    assert max_diff(theta1, theta0) > 1e-3 and max_diff(theta2, theta1) > 1e-3, "weights barely moved"
    expected = {k: decay * (decay * theta0[k] + (1 - decay) * theta1[k]) + (1 - decay) * theta2[k] for k in theta0}
    err = max_diff(params(two.ema), expected)
    assert err < 1e-6, f"EMA differs from d·(d·θ0 + (1−d)·θ1) + (1−d)·θ2 by {err:.2e}"
    assert max_diff(params(two.ema), theta2) > 1e-3  # the EMA is not simply the last weights
    assert all(not p.requires_grad for p in two.ema.parameters()) and not two.ema.training


def test_ema_helper_state_dict_and_copy_to():
    model, other = TinyMLP(seed=0), TinyMLP(seed=1)
    ema = EMA(model, decay=0.5)
    start = params(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for k, v in params(ema.ema_model).items():
        assert torch.allclose(v, start[k] + 0.5), k
    restored = EMA(other, decay=0.99)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.5 and restored.num_updates == 1
    restored.copy_to(other)
    assert max_diff(params(other), params(ema.ema_model)) == 0.0
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def _resume_settings(**extra):
    # 200 samples, micro-batch 16 → 12 micro-batches = 6 steps per epoch, so checkpoints fall mid-epoch;
    # dropout makes the global RNG part of what must be restored.
    # Log rows every 3 steps: the step-16 checkpoint falls between rows, so resuming must average the right steps.
    return dict(model=TinyMLP(dropout=0.2), dataset=four_clusters(200), batch_size=32, grad_accum=2,
                checkpoint_every=8, keep_checkpoints=None, log_every=3, **extra)


def test_resume_equals_training_straight(tmp_path):
    straight = train(total_steps=24, run_dir=tmp_path / "straight", **_resume_settings())
    assert [load_checkpoint(p).step for p in list_checkpoints(tmp_path / "straight")] == [8, 16, 24]

    # N steps, then continue to 2N from the step-N checkpoint.
    train(total_steps=12, run_dir=tmp_path / "halves", **_resume_settings())
    assert load_checkpoint(latest_checkpoint(tmp_path / "halves")).step == 12
    halves = train(total_steps=24, run_dir=tmp_path / "halves", resume=True, **_resume_settings())

    # A run killed in step 19 (between checkpoints), then resumed from its step-16 checkpoint.
    calls = {"n": 0, "kill_at": 2 * 18 + 1}

    def killed_pairs(x, generator):
        calls["n"] += 1
        if calls["n"] == calls["kill_at"]:
            raise KeyboardInterrupt("killed")
        return rotate_pairs(x, generator)

    with pytest.raises(KeyboardInterrupt):
        train(total_steps=24, run_dir=tmp_path / "killed", pair_fn=killed_pairs, **_resume_settings())
    assert load_checkpoint(latest_checkpoint(tmp_path / "killed")).step == 16
    calls["kill_at"] = -1
    killed = train(total_steps=24, run_dir=tmp_path / "killed", pair_fn=killed_pairs, resume=True,
                   **_resume_settings())

    for name, run in (("halves", halves), ("killed", killed)):
        assert (run.steps, run.samples_seen) == (24, 24 * 32), name
        err_model = max_diff(params(run.model), params(straight.model))
        err_ema = max_diff(params(run.ema), params(straight.ema))
        assert err_model < 1e-6 and err_ema < 1e-6, f"{name}: model differs by {err_model:.2e}, EMA by {err_ema:.2e}"
        assert len(run.losses) == 24
        assert run.losses == straight.losses, f"{name}: the losses are not bit for bit the uninterrupted run's"
        rows = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        straight_rows = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [r["step"] for r in straight_rows] == list(range(3, 25, 3)), name
        assert [r["loss"] for r in rows] == [s["loss"] for s in straight_rows], name


def test_samples_seen_counts_every_sample_with_grad_accumulation(tmp_path):
    class CountingDataset(torch.utils.data.Dataset):
        def __init__(self, data):
            self.data, self.reads = data, 0

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            self.reads += 1
            return self.data[i], 0  # (sample, label) items are accepted

    dataset = CountingDataset(four_clusters(100))
    micro_sizes = []

    def recording_pairs(x, generator):
        micro_sizes.append(x.shape[0])
        return rotate_pairs(x, generator)

    result = train(dataset=dataset, pair_fn=recording_pairs, total_samples=300, batch_size=32, grad_accum=4,
                   log_every=5, run_dir=tmp_path)
    assert result.steps == 10 == math.ceil(300 / 32)
    assert micro_sizes == [8] * 40
    assert result.samples_seen == dataset.reads == 320
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["samples_seen"]) for r in rows] == [(5, 160), (10, 320)]
    assert set(rows[0]) == {"step", "samples_seen", "loss", "lr", "time"}


def test_config_is_dumped_once_and_runs_are_not_overwritten(tmp_path, capsys):
    train(total_steps=2, run_dir=tmp_path, seed=3, lr=np.float64(3e-3), config={"experiment": "toy", "sizes": [1, 2]})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["seed"] == 3 and config["batch_size"] == 32 and config["betas"] == [0.9, 0.999]
    assert config["extra"] == {"experiment": "toy", "sizes": [1, 2]}
    assert config["world_size"] == 1 and config["micro_batch"] == 32 and "TinyMLP" in config["model"]
    assert load_checkpoint(latest_checkpoint(tmp_path)).config == config
    with pytest.raises(FileExistsError, match="resume=True"):
        train(total_steps=2, run_dir=tmp_path)
    train(total_steps=3, run_dir=tmp_path, seed=3, lr=1e-3, resume=True, config={"experiment": "toy", "sizes": [1, 2]})
    out = capsys.readouterr().out
    assert "resumed from" in out and "changed settings ['lr']" in out, out
    assert json.loads((tmp_path / "config.json").read_text()) == config  # written once, by the first run


def test_x0_parameterization_keeps_its_type_and_grid_training_runs():
    result = train(model=X0Param(TinyMLP(), SCHEDULE), total_steps=3, train_grid="quadratic", train_grid_nfe=20,
                   ot_ode=True, grad_clip=1.0, lr_warmup_steps=2)
    assert isinstance(result.model, X0Param) and isinstance(result.ema, X0Param)
    assert all(math.isfinite(v) for v in result.losses)


@pytest.mark.parametrize("bad, error", [
    (dict(batch_size=30, grad_accum=4), "multiple of"),
    (dict(total_steps=None), "exactly one"),
    (dict(seed=-1), "seed"),
    (dict(resume=True), "run_dir"),
    (dict(config={"path": object()}), "JSON-like"),
    (dict(total_steps=-3), r"total_steps must be an integer >= 1 \(optimizer steps to train\); got -3"),
    (dict(total_steps=None, total_samples=0), "total_samples must be an integer >= 1; got 0"),
    (dict(lr=float("inf")), "lr must be a finite number > 0; got inf"),
    (dict(lr=float("nan")), "lr must be a finite number > 0; got nan"),
    (dict(lr=-1e-3), "lr must be a finite number > 0; got -0.001"),
    (dict(grad_clip=0.0), "grad_clip must be a finite number > 0; got 0.0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1; got 0"),
    (dict(log_every=0), "log_every must be an integer >= 1; got 0"),
    (dict(betas=(0.9, 1.0)), r"betas\[1\] must be a finite number in \[0, 1\); got 1.0"),
    (dict(ema_decay=float("nan")), r"ema_decay must be a finite number in \[0, 1\); got nan"),
    (dict(fingerprint={"variant": object()}), "fingerprint.*JSON-like"),
])
def test_bad_settings_are_refused(bad, error):
    settings = dict(total_steps=1)
    settings.update(bad)
    with pytest.raises((ValueError, TypeError), match=error):
        train(**settings)


def nan_after(step: int, grad_accum: int = 1):
    """A pair_fn whose pairs turn NaN from optimizer step ``step`` (1-based) on."""
    calls = {"n": 0}

    def pairs(x, generator):
        calls["n"] += 1
        x, y, cond = rotate_pairs(x, generator)
        return (x, y * float("nan"), cond) if calls["n"] > (step - 1) * grad_accum else (x, y, cond)

    return pairs


def test_non_finite_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """NaN pairs from step 7: the checkpoint of step 6 is the last one written and stays; the error names
    step 7 and the loss of step 6. Detection waits for the next flush (the step-8 checkpoint here), so
    the loop needs no per-step host sync, but nothing is written on the way."""
    good = train(total_steps=6, log_every=100, seed=1)
    with pytest.raises(NonFiniteLossError) as info:
        train(total_steps=20, pair_fn=nan_after(7), run_dir=tmp_path, checkpoint_every=2, log_every=100, seed=1)
    message = str(info.value)
    assert "training stopped at step 7: the loss is nan" in message, message
    assert f"Last finite loss: {good.losses[-1]:.6g} at step 6" in message, message
    assert f"the last good checkpoint, {tmp_path / 'checkpoint-000000006.pt'}, is kept" in message, message
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-000000006.pt"]
    kept = load_checkpoint(latest_checkpoint(tmp_path))
    assert kept.step == 6 and kept.parts["losses"].tolist() == good.losses  # bit for bit the good run's
    assert not (tmp_path / "log.jsonl").exists()  # no row was written (log_every=100)


def test_huge_learning_rate_stops_with_a_clear_error():
    """--lr 50 on the MNIST driver trained on NaN; here lr = 1e12 overflows the weights within a few steps."""
    with pytest.raises(NonFiniteLossError, match=r"training stopped at step \d+: .*lr=1e\+12"):
        train(total_steps=50, lr=1e12, log_every=1)


def test_non_finite_gradient_with_a_finite_loss_stops_too():
    """√ at 0 has an infinite derivative: the loss is finite, the gradient is not."""
    def loss_fn(model, x, y, cond):
        w = model.backbone.net[0].weight
        return (model(x, torch.full((x.shape[0],), 0.5)) - y).square().mean() + (w - w.detach()).sqrt().sum()

    with pytest.raises(NonFiniteLossError, match=r"training stopped at step 1: the loss is [0-9.e+-]+ and the "
                                                  r"gradient norm (inf|nan)"):
        train(model=EpsParam(TinyMLP(), SCHEDULE), objective=SupervisedObjective(loss_fn), schedule=None,
              total_steps=3, log_every=1)


def test_resuming_another_runs_checkpoint_is_refused_with_both_fingerprints(tmp_path):
    train(total_steps=2, run_dir=tmp_path, fingerprint={"variant": "a-vanilla"})
    saved = load_checkpoint(latest_checkpoint(tmp_path)).fingerprint
    assert saved["variant"] == "a-vanilla" and saved["model"]["backbone"] == "TinyMLP"
    assert saved["objective"]["schedule"] == repr(SCHEDULE)
    with pytest.raises(CheckpointMismatchError) as info:
        train(total_steps=4, run_dir=tmp_path, resume=True, fingerprint={"variant": "f-res"})
    message = str(info.value)
    assert "differ in ['variant']" in message and '"variant": "a-vanilla"' in message
    assert '"variant": "f-res"' in message and "ignore_fingerprint=True" in message
    # Same shapes, other schedule: refused too (load_state_dict alone would take it).
    with pytest.raises(CheckpointMismatchError, match=r"differ in \['objective.schedule'\]"):
        train(total_steps=4, run_dir=tmp_path, resume=True, fingerprint={"variant": "a-vanilla"},
              schedule=SymmetricSchedule(0.1, 0.5))
    with pytest.raises(CheckpointMismatchError, match=r"differ in \['model.parameters', 'model.shapes'\]"):
        train(total_steps=4, run_dir=tmp_path, resume=True, fingerprint={"variant": "a-vanilla"},
              model=TinyMLP(width=32))
    with pytest.warns(UserWarning, match="overridden"):
        result = train(total_steps=4, run_dir=tmp_path, resume=True, fingerprint={"variant": "f-res"},
                       ignore_fingerprint=True)
    assert result.steps == 4
    assert load_checkpoint(latest_checkpoint(tmp_path)).fingerprint["variant"] == "f-res"  # now it is this run's
    # the matching run resumes without a word
    train(total_steps=5, run_dir=tmp_path, resume=True, fingerprint={"variant": "f-res"})


def test_a_folder_with_only_another_runs_config_is_refused_too(tmp_path):
    """Killed before its first checkpoint, a run leaves config.json alone: its fingerprint is checked."""
    with pytest.raises(NonFiniteLossError):
        train(total_steps=3, run_dir=tmp_path, pair_fn=nan_after(1), fingerprint={"variant": "e-cat"})
    assert latest_checkpoint(tmp_path) is None and (tmp_path / "config.json").exists()
    with pytest.raises(CheckpointMismatchError, match="config.json belongs to another run"):
        train(total_steps=3, run_dir=tmp_path, resume=True, fingerprint={"variant": "d-noise"})


def test_callback_sees_every_nth_step_and_the_end():
    seen = []
    result = train(total_steps=10, callback=lambda s: seen.append((s.step, s.samples_seen, len(s.losses),
                                                                   s.ema is not s.model)), callback_every=4)
    assert [s[0] for s in seen] == [4, 8, 10], seen
    assert all(samples == step * 32 and n == step and separate for step, samples, n, separate in seen)
    assert result.steps == 10
    with pytest.raises(ValueError, match="callback_every must be an int >= 1"):
        train(total_steps=2, callback=lambda s: None)


def test_supervised_objective_fits_a_linear_map():
    """The same loop trains a plain regression (how the classifier, estimator and denoiser train)."""
    from pi2sb_lab.train import SupervisedObjective

    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, generator=g)
    w_true = torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    result = training_loop(model=model, dataset=torch.arange(512), pair_fn=lambda rows, gen: (x[rows], x[rows] @ w_true),
                           objective=SupervisedObjective(lambda m, a, b: (m(a) - b).square().mean()),
                           total_steps=300, batch_size=64, lr=0.05, ema_decay=0.0, progress=False)
    err = (result.model.weight.detach().T - w_true).abs().max().item()
    assert err < 1e-2, f"learned weights off by {err:.3g}"
    assert torch.equal(result.ema.weight, result.model.weight)  # decay 0: the EMA is a plain copy
    with pytest.raises(ValueError, match="with objective= given"):
        training_loop(model=model, dataset=torch.arange(512), pair_fn=lambda r, g: r, schedule=SCHEDULE,
                      objective=SupervisedObjective(lambda m, a: a.sum()), total_steps=1, batch_size=8)
    with pytest.raises(ValueError, match="give a schedule"):
        training_loop(model=model, dataset=torch.arange(512), pair_fn=lambda r, g: r, total_steps=1, batch_size=8)


def test_cosine_learning_rate_and_the_callers_rng():
    from pi2sb_lab.train import TrainSettings

    settings = TrainSettings(lr=1.0, lr_warmup_steps=2, lr_decay="cosine", lr_final=0.1, total_steps=12)
    lrs = [settings.lr_at(s) for s in range(12)]
    assert lrs[:2] == [0.5, 1.0] and abs(lrs[-1] - 0.1) < 1e-12
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])), lrs
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 6 / 11))
    assert abs(lrs[6] - mid) < 1e-12
    model = TinyMLP()  # (its constructor seeds the global RNG itself, and train() builds one)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    training_loop(model=model, schedule=SCHEDULE, dataset=four_clusters(64), pair_fn=rotate_pairs, batch_size=32,
                  total_steps=3, progress=False)
    assert torch.equal(torch.rand(3), expected), "training_loop must leave the caller's global RNG as it was"
    with pytest.raises(ValueError, match=r"lr_decay must be one of \['constant', 'cosine'\]"):
        train(total_steps=1, lr_decay="step")
