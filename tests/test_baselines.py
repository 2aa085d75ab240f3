"""The baseline studies' building blocks: corruptions, the equal-realism comparison, cells, the budget shortcut."""

import math

import pytest
import torch

from pi2sb_lab.data.mnist import load_mnist
from pi2sb_lab.experiments.baselines import MODELS, BaselineConfig, check_models, check_operators, operator_test_set, \
    restore_with, train_model
from pi2sb_lab.experiments.cells import fmt_mean_std, mean_std, run_cells
from pi2sb_lab.experiments.corruptions import CORRUPTIONS, corrupt
from pi2sb_lab.experiments.editing import EditMetrics, EditStudy, Setting, SettingRecord, fidelity_at_equal_realism, \
    settings_for

DIGITS = load_mnist("test").images[:16]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_keep_shape_range_and_grow_with_severity(name):
    outs = [corrupt(DIGITS, name, s, generator=torch.Generator().manual_seed(0)) for s in (1, 3, 5)]
    for out in outs:
        assert out.shape == DIGITS.shape and out.dtype == DIGITS.dtype
        assert out.min() >= -1 and out.max() <= 1
    change = [(o - DIGITS).abs().mean().item() for o in outs]
    assert all(math.isfinite(c) for c in change) and change[0] > 0
    assert change[0] < change[1] < change[2], f"{name}: mean |y − x| {change} does not grow with severity"
    again = corrupt(DIGITS, name, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, outs[1]), "a seeded corruption must reproduce"


def test_corruption_bad_input():
    with pytest.raises(ValueError, match="unknown corruption.*valid names: noise, blur, pixelate, contrast, jpeg"):
        corrupt(DIGITS, "fog", 1)
    with pytest.raises(ValueError, match=r"severity must be one of \[1, 2, 3, 4, 5\]; got 6"):
        corrupt(DIGITS, "noise", 6)


def _study(sd_points, od_points):
    """A study of one seed and one condition with given (FD, PSNR) points for SDEdit t0s and ODEdit Ks."""
    cond = ("noise", 2)
    records = [SettingRecord(0, Setting("sdedit", 0.1 * (i + 1)), {cond: EditMetrics(p, 0.0, 0.0, fd)}, None, 1, 0.0)
               for i, (fd, p) in enumerate(sd_points)]
    records += [SettingRecord(0, Setting("odedit", k), {cond: EditMetrics(p, 0.0, 0.0, fd)}, None, 1, 0.0)
                for k, (fd, p) in zip((0, 10, 40), od_points)]
    return EditStudy(None, [0], [r.setting for r in records], None, records, {}, 1.0, "cpu", 0.0, 0.0), cond


def test_fidelity_at_equal_realism_reads_sdedits_pareto_frontier(exact):
    study, cond = _study([(100.0, 20.0), (10.0, 15.0), (1000.0, 25.0)], [(50.0, 19.0), (5.0, 30.0), (150.0, 21.0)])
    got = dict(fidelity_at_equal_realism(study, 0, cond))
    exact(abs(got[0] - (19.0 - 15.0)))  # only the FD-10 SDEdit point is at least as realistic as FD 50
    assert 10 not in got, "an ODEdit point more realistic than every SDEdit setting has no rival"
    exact(abs(got[40] - (21.0 - 20.0)))  # FD 150: rivals at FD 10 and 100, the best has PSNR 20


def test_settings_and_names_checked():
    assert [s.label for s in settings_for([0.2], [0, 5])] == ["SDEdit t0=0.2", "ODEdit K=0", "ODEdit K=5"]
    with pytest.raises(ValueError, match=r"t0s must lie in \(0, 1\]"):
        settings_for([0.0], [1])
    with pytest.raises(ValueError, match="unknown operator.*valid names"):
        check_operators(["sr8x"])
    with pytest.raises(ValueError, match="unknown model.*valid names: i2sb, i2sb-ot, palette, palette-v"):
        check_models(["gan"])
    with pytest.raises(ValueError, match="total_steps must be an integer >= 1"):
        BaselineConfig(total_steps=0)


def test_mean_std_and_cells():
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0)) and math.isnan(mean_std([1.0])[1])
    assert fmt_mean_std([1.0, 3.0], 1) == "2.0 ± 1.4" and fmt_mean_std([0.5], 2, signed=True) == "+0.50"
    seen = []
    assert run_cells(pow, [dict(base=2, exp=3), dict(base=3, exp=2)], progress=False, on_result=seen.append) == [8, 9]
    assert seen == [8, 9]
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        run_cells(pow, [], workers=0)


def test_trained_cell_models_restore_the_right_shapes():
    """A few steps of each model kind train and restore (clamped, on the CPU); the bridge at NFE 1 from an
    untrained-ish network stays near y, Palette starts from noise: their distances to y differ."""
    config = BaselineConfig(total_steps=3, batch_size=8, lr_warmup_steps=0, train_size=64, eval_size=8,
                            classifier_epochs=1)
    test = operator_test_set("sr4x-pool", 8)
    assert MODELS["palette-v"].prediction == "v" and MODELS["i2sb-ot"].ot_ode
    outs = {}
    for kind in ("i2sb", "palette"):
        trained = train_model(MODELS[kind], "sr4x-pool", config, seed=0, progress=False)
        assert len(trained.losses) == 3 and all(math.isfinite(v) for v in trained.losses)
        outs[kind] = restore_with(trained, test.y, nfe=2, seed=0)
        assert outs[kind].shape == test.y.shape and outs[kind].abs().max() <= 1
    near_y = (outs["i2sb"] - test.y).abs().mean().item()
    far = (outs["palette"] - test.y).abs().mean().item()
    assert near_y < far, f"I2SB starts at y ({near_y:.3f} from it), Palette at noise ({far:.3f})"


def test_a_longer_run_passes_through_the_shorter_runs_model():
    """budget.py's shortcut: with a constant learning rate after warm-up and step-seeded randomness, the EMA
    model at step 4 of an 8-step training_loop run is bitwise the model a 4-step run ends with."""
    from pi2sb_lab.nets import seeded
    from pi2sb_lab.nets.mlp import MLP2D
    from pi2sb_lab.schedule import SymmetricSchedule
    from pi2sb_lab.train import training_loop

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    pair_fn = lambda x, g: (x, x + 0.5 * torch.randn(x.shape, generator=g), None)  # noqa: E731
    kw = dict(dataset=data, pair_fn=pair_fn, schedule=SymmetricSchedule(), batch_size=16, lr=1e-2,
              lr_warmup_steps=2, ema_decay=0.9, seed=3, progress=False)
    short = training_loop(model=seeded(lambda: MLP2D(2, hidden=16, depth=1), 0), total_steps=4, **kw)
    seen = {}
    training_loop(model=seeded(lambda: MLP2D(2, hidden=16, depth=1), 0), total_steps=8, callback_every=4,
                  callback=lambda s: seen.setdefault(s.step, {k: v.clone() for k, v in s.ema.state_dict().items()}),
                  **kw)
    assert set(seen) == {4, 8}
    assert all(torch.equal(seen[4][k], v) for k, v in short.ema.state_dict().items())
    assert not all(torch.equal(seen[8][k], v) for k, v in short.ema.state_dict().items())
