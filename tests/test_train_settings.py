"""TrainSettings: one record for the loop's plain settings, each field checked once; the configs that feed it;
the atomic-write helper; the checkpoint's own step; dist's collectives in a world of one."""

import dataclasses
import json
import math

import pytest
import torch

from pi2sb_lab import dist
from pi2sb_lab.atomic import atomic_path, write_atomic
from pi2sb_lab.checkpoint import checkpoint_path, latest_checkpoint, step_of
from pi2sb_lab.train import TrainSettings, training_loop
from test_train import SCHEDULE, TinyMLP, four_clusters, params, rotate_pairs


def test_a_settings_record_and_the_same_keywords_train_the_same_run(tmp_path):
    settings = TrainSettings(total_steps=6, batch_size=32, lr=3e-3, lr_warmup_steps=2, ema_decay=0.9, log_every=3,
                             progress=False, run_dir=str(tmp_path / "a"))
    by_record = training_loop(settings, model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(256),
                              pair_fn=rotate_pairs)
    by_keywords = training_loop(model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(256), pair_fn=rotate_pairs,
                                total_steps=6, batch_size=32, lr=3e-3, lr_warmup_steps=2, ema_decay=0.9, log_every=3,
                                progress=False, run_dir=str(tmp_path / "b"))
    assert by_record.losses == by_keywords.losses
    assert all(torch.equal(a, b) for a, b in zip(params(by_record.ema).values(), params(by_keywords.ema).values()))
    a, b = (json.loads((tmp_path / n / "config.json").read_text()) for n in "ab")
    assert {k: v for k, v in a.items() if k != "run_dir"} == {k: v for k, v in b.items() if k != "run_dir"}
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == [settings.lr_at(2), settings.lr_at(5)] == [3e-3, 3e-3]
    # keywords beside a record replace its fields
    longer = training_loop(settings, model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(256),
                           pair_fn=rotate_pairs, total_steps=7, run_dir=None)
    assert longer.steps == 7 and longer.losses[:6] == by_record.losses


def test_the_callback_reads_the_learning_rate_of_the_last_step():
    settings = TrainSettings(total_steps=8, batch_size=32, lr=1e-2, lr_warmup_steps=4, lr_decay="cosine",
                             lr_final=0.1, progress=False, callback_every=3)
    seen = []
    training_loop(settings, model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(64), pair_fn=rotate_pairs,
                  callback=lambda state: seen.append((state.step, state.lr)))
    assert seen == [(s, settings.lr_at(s - 1)) for s in (3, 6, 8)], seen
    assert seen[0][1] == pytest.approx(1e-2 * 3 / 4) and seen[-1][1] == pytest.approx(1e-3)


@pytest.mark.parametrize("bad, error", [
    (dict(total_steps=None), "exactly one of total_steps and total_samples"),
    (dict(lr_final=1.5), r"lr_final must be a finite number in \[0, 1\]; got 1.5"),
    (dict(lr_final=float("nan")), "lr_final must be a finite number"),
    (dict(weight_decay=float("inf")), "weight_decay must be a finite number >= 0; got inf"),
    (dict(ema_rampup=-1.0), "ema_rampup must be a finite number >= 0"),
    (dict(keep_checkpoints=0), r"keep_checkpoints must be an integer >= 1 or None \(keep all\); got 0"),
    (dict(callback_every=0), "callback_every must be an int >= 1"),
    (dict(lr_warmup_steps=-1), "lr_warmup_steps must be an integer >= 0; got -1"),
])
def test_each_field_is_checked_when_the_record_is_made(bad, error):
    with pytest.raises((ValueError, TypeError), match=error):
        TrainSettings(**{"total_steps": 1, **bad})
    with pytest.raises((ValueError, TypeError), match=error):  # … and when a copy changes it
        TrainSettings(total_steps=1).replace(**bad)


def test_an_unknown_setting_is_named():
    with pytest.raises(TypeError, match=r"unknown training settings \['warmup_steps'\]"):
        training_loop(model=TinyMLP(), schedule=SCHEDULE, dataset=four_clusters(64), pair_fn=rotate_pairs,
                      total_steps=1, warmup_steps=2)


def test_total_samples_round_up_to_whole_steps_and_the_cosine_ends_at_lr_final():
    assert TrainSettings(total_samples=65, batch_size=32).steps == 3
    s = TrainSettings(total_steps=11, lr=2.0, lr_decay="cosine", lr_final=0.25)
    assert s.lr_at(0) == 2.0 and s.lr_at(10) == pytest.approx(0.5, abs=1e-12)
    assert s.lr_at(5) == pytest.approx(2.0 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * 0.5))), abs=1e-12)


def test_the_studies_and_full_configs_give_the_loop_their_settings_by_the_same_names():
    from full.config import load_config
    from pi2sb_lab.experiments.baselines import BaselineConfig
    from pi2sb_lab.experiments.editing import EditConfig
    from pi2sb_lab.experiments.mnist import MNISTConfig

    mnist = MNISTConfig(total_steps=7, batch_size=8, lr_warmup_steps=3, train_size=64).train_settings(seed=2)
    assert (mnist.total_steps, mnist.batch_size, mnist.lr_warmup_steps, mnist.seed) == (7, 8, 3, 2)
    assert EditConfig(total_steps=5).train_settings().total_steps == 5
    assert BaselineConfig(total_steps=4, lr=1e-3).train_settings().lr == 1e-3
    with pytest.raises(ValueError, match="lr must be a finite number > 0; got nan"):
        MNISTConfig(lr=float("nan"))
    with pytest.raises(ValueError, match=r"ema_decay must be a finite number in \[0, 1\); got 1.0"):
        BaselineConfig(ema_decay=1.0)
    cfg = load_config("estimator", ["lr_warmup_steps=9", "log_every=6", "image_every=4", "ot_ode=true"])
    full = cfg.train_settings(resume=True)
    assert (full.lr_warmup_steps, full.callback_every, full.resume, full.ot_ode) == (9, 2, True, False)
    assert full.total_steps == cfg.total_steps and full.ema_rampup == cfg.ema_rampup


def test_one_name_and_one_check_per_training_setting_in_every_config():
    from full.config import ConfigError, FullConfig, config_from_dict
    from pi2sb_lab.experiments.baselines import BaselineConfig
    from pi2sb_lab.experiments.editing import EditConfig
    from pi2sb_lab.experiments.mnist import MNISTConfig
    from pi2sb_lab.experiments.twod import BridgeConfig
    from pi2sb_lab.train_settings import STUDY_FIELDS

    for config in (MNISTConfig, BaselineConfig, EditConfig, BridgeConfig):
        names = {f.name for f in dataclasses.fields(config)}
        assert "total_steps" in names and not names & {"steps", "prior_steps", "warmup_steps"}, config.__name__
        given = {k: getattr(config(), k) for k in STUDY_FIELDS if k in names}
        settings = config().train_settings()
        assert all(getattr(settings, k) == v for k, v in given.items()), config.__name__
        # the one check is TrainSettings': the same words as the record's own, for a study and for full/
        with pytest.raises(ValueError) as study_err:
            config(total_steps=0)
        with pytest.raises(ValueError) as record_err:
            TrainSettings(total_steps=0)
        assert str(study_err.value) == str(record_err.value), config.__name__
    with pytest.raises(ConfigError) as full_err:
        FullConfig(batch_size=0)
    with pytest.raises(ValueError) as record_err:
        TrainSettings(total_steps=1, batch_size=0)
    assert str(full_err.value) == str(record_err.value)
    # a config stored under the older names (a run folder's components.pt, a checkpoint) still loads
    old = MNISTConfig(total_steps=12).as_dict()
    old["steps"] = old.pop("total_steps")
    assert MNISTConfig.from_dict(old).total_steps == 12
    assert EditConfig.from_dict({"prior_steps": 7}).total_steps == 7
    stored = config_from_dict({"grid_nfe": 3, "grid_images": 2})
    assert (stored.image_nfe, stored.image_rows) == (3, 2)
    for bad in ("step_size", "temperature"):  # inf and NaN were accepted before
        with pytest.raises(ValueError, match=f"{bad} must be a finite number >= 0; got inf"):
            EditConfig(**{bad: float("inf")})


def test_atomic_writes_replace_whole_files_and_leave_no_temp_file(tmp_path):
    target = write_atomic(tmp_path / "a.json", "old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    write_atomic(target, b"new", durable=True)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_the_checkpoint_module_owns_the_step_of_a_file(tmp_path):
    path = checkpoint_path(tmp_path, 1200)
    assert step_of(path) == 1200 and step_of(str(path)) == 1200
    for step in (3, 20, 100):
        checkpoint_path(tmp_path, step).write_bytes(b"")
    assert step_of(latest_checkpoint(tmp_path)) == 100
    with pytest.raises(ValueError, match="not a checkpoint file name"):
        step_of(tmp_path / "checkpoint-12.ckpt")


def test_collectives_in_a_world_of_one_return_this_ranks_value():
    flags = torch.tensor([0, 1, 0], dtype=torch.uint8)
    out = dist.all_reduce_max(flags)
    assert torch.equal(out, flags) and out is not flags
    assert dist.all_gather_object({"done": 3}) == [{"done": 3}]
