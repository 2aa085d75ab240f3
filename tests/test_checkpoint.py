"""Checkpoints: exact round trips, atomic writes, weights_only loading, JSON-like configs."""

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import pi2sb_lab
from pi2sb_lab import checkpoint as ckpt_mod
from pi2sb_lab.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    check_fingerprint,
    check_config,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)


def _model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95), weight_decay=0.01)
    model(torch.randn(4, 3)).square().mean().backward()
    opt.step()  # so the optimizer holds exp_avg / exp_avg_sq / step state
    return model, opt


CONFIG = {"lr": 1e-3, "name": "toy", "sizes": [1, 2, 3], "nested": {"ok": True, "none": None}, "pair": (0.9, 0.99)}


def test_round_trip_restores_tensors_config_version_counters(tmp_path):
    model, opt = _model_and_optimizer()
    losses = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    path = save_checkpoint(tmp_path / "c.pt", config=CONFIG, step=7, samples_seen=448,
                           model=model, optimizer=opt, losses=losses, elapsed=1.5)
    ck = load_checkpoint(path)
    assert ck.version == pi2sb_lab.__version__
    assert (ck.step, ck.samples_seen) == (7, 448)
    assert ck.config == {**CONFIG, "pair": [0.9, 0.99]}  # tuples are stored as lists, as in JSON
    assert ck.parts["elapsed"] == 1.5
    assert torch.equal(ck.parts["losses"], losses) and ck.parts["losses"].dtype == torch.float64
    for name, value in model.state_dict().items():
        assert torch.equal(ck.parts["model"][name], value), name

    model2, opt2 = _model_and_optimizer(seed=1)
    assert not torch.equal(model2[0].weight, model[0].weight)
    ck.restore(model=model2, optimizer=opt2)
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid, state in s1["state"].items():
        for key, value in state.items():
            assert torch.equal(value, s2["state"][pid][key]), (pid, key)
    with pytest.raises(KeyError, match="ema"):
        ck.restore(ema=model2)


def test_interrupted_save_keeps_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, step=1, weights=torch.arange(5.0))
    real_save = torch.save

    def save_half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # part of the file is on disk ...
        raise OSError("disk full")  # ... when the write dies

    monkeypatch.setattr(ckpt_mod.torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, step=2, weights=torch.zeros(5))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"], "a temporary file was left behind"
    ck = load_checkpoint(path)
    assert ck.step == 1 and torch.equal(ck.parts["weights"], torch.arange(5.0))


def test_interrupt_by_keyboard_also_cleans_up(tmp_path, monkeypatch):
    def interrupted(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", step=0)
    assert list(tmp_path.iterdir()) == []


class _Payload:
    """An arbitrary class: unpickling it would run ``_mark_executed`` (a stand-in for malicious code)."""

    executed = False

    def __reduce__(self):
        return (_mark_executed, ())


def _mark_executed():
    _Payload.executed = True
    return "pwned"


def test_pickled_objects_can_be_neither_saved_nor_loaded(tmp_path):
    with pytest.raises(TypeError, match="_Payload"):
        save_checkpoint(tmp_path / "a.pt", extra={"obj": _Payload()})
    assert not (tmp_path / "a.pt").exists()

    # A file written by plain torch.save (full pickle) in our layout, smuggling the object in.
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "version": pi2sb_lab.__version__, "config": {}, "step": 0, "samples_seen": 0,
                "parts": {"x": _Payload()}}, evil)
    with pytest.raises(CheckpointError, match="evil.pt") as info:
        load_checkpoint(evil)
    assert "weights_only" in str(info.value)
    assert not _Payload.executed, "loading ran code from the file: weights_only was not used"
    # The same object really does run when unpickled without weights_only (the test is not vacuous).
    pickle.loads(pickle.dumps(_Payload()))
    assert _Payload.executed
    _Payload.executed = False


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    path = save_checkpoint(tmp_path / "c.pt", weights=torch.randn(100))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match="c.pt"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"just": torch.zeros(2)}, other)  # loadable, but not ours
    with pytest.raises(CheckpointError, match="not a pi2sb_lab checkpoint"):
        load_checkpoint(other)
    empty = tmp_path / "checkpoint-000000003.pt"
    empty.touch()  # 0 bytes: torch.load fails with an empty message, which once broke our own message
    with pytest.raises(CheckpointError, match=r"checkpoint-000000003.pt: the file is empty \(0 bytes\)"):
        load_checkpoint(empty)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .* \(it is a folder\)"):
        load_checkpoint(tmp_path)


def test_a_part_of_other_shapes_names_the_file_and_the_part(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", model=nn.Linear(2, 3))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path).restore(model=nn.Linear(2, 4))
    message = str(info.value)
    assert str(path) in message and "part 'model' does not fit the Linear" in message
    assert "size mismatch for weight" in message  # torch's own explanation is kept


def test_fingerprints_compare_and_name_their_differences(tmp_path):
    model = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 2))
    fp = {"model": ckpt_mod.model_fingerprint(model), "variant": "res"}
    assert fp["model"] == ckpt_mod.model_fingerprint(nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 2)))  # weights do not enter
    assert fp["model"] != ckpt_mod.model_fingerprint(nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 3)))
    path = save_checkpoint(tmp_path / "c.pt", fingerprint=fp, model=model)
    ck = load_checkpoint(path)
    assert ck.fingerprint == fp
    check_fingerprint(ck, fp)  # equal: silent
    with pytest.raises(CheckpointMismatchError) as info:
        check_fingerprint(ck, {**fp, "variant": "cat"}, override_name="--force")
    message = str(info.value)
    assert "differ in ['variant']" in message and '"variant": "res"' in message and '"variant": "cat"' in message
    assert "pass --force" in message and str(path) in message
    with pytest.warns(UserWarning, match="overridden"):
        check_fingerprint(ck, {**fp, "variant": "cat"}, override=True)
    old = load_checkpoint(save_checkpoint(tmp_path / "old.pt", model=model))  # no fingerprint: warned, not refused
    with pytest.warns(UserWarning, match="has no fingerprint"):
        check_fingerprint(old, fp)


@pytest.mark.parametrize("bad", [
    {"path": Path("runs/a")}, {"fn": print}, {"deep": {"list": [1, {"x": torch.zeros(1)}]}}, {1: "int key"},
    {"t": torch.tensor(1.0)}, {"obj": object()},
])
def test_config_rejects_values_that_are_not_json_like(bad, tmp_path):
    with pytest.raises(TypeError, match="JSON-like|string"):
        check_config(bad)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.pt", config=bad)
    assert not (tmp_path / "c.pt").exists()


def test_config_accepts_json_like_and_matches_json(tmp_path):
    cleaned = check_config(CONFIG)
    assert cleaned == json.loads(json.dumps(CONFIG))


def test_latest_checkpoint_and_pruning(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in (5, 100, 20):
        save_checkpoint(checkpoint_path(tmp_path, step), step=step)
    (tmp_path / ".checkpoint-000000200.pt.123.abcd.tmp").write_bytes(b"half")  # a killed writer's leftover
    (tmp_path / "notes.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 100)
    assert [load_checkpoint(p).step for p in list_checkpoints(tmp_path)] == [5, 20, 100]
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-000000020.pt", "checkpoint-000000100.pt"]
    assert not list(tmp_path.glob("*.tmp"))
