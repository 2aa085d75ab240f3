"""torchrun helpers: a world of one outside torchrun, and a real two-process gloo run under it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pi2sb_lab import dist
from pi2sb_lab.dist import ShardedSampler, make_loader

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    dist.cleanup()
    yield
    dist.cleanup()


def test_init_outside_torchrun_is_a_world_of_one(no_torchrun, capsys):
    device = dist.init("cpu")
    assert device == torch.device("cpu") and dist.device() == device
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.is_main()) == (0, 1, 0, True)
    assert not dist.is_initialized()
    assert dist.init() == device  # a second call keeps the first choice ...
    with pytest.raises(RuntimeError, match="already chose"):
        dist.init("cuda")  # ... and refuses to switch
    dist.barrier()  # returns at once
    x = torch.tensor([1.0, 3.0])
    mean = dist.all_reduce_mean(x)
    assert torch.equal(mean, x) and mean is not x
    assert dist.all_reduce_mean(torch.tensor(3)).dtype == torch.float32
    dist.print0("hello from rank 0")
    assert capsys.readouterr().out == "hello from rank 0\n"


def test_init_refuses_a_half_set_torchrun_environment(no_torchrun, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        dist.init("cpu")


def test_sharded_sampler_splits_epochs_and_resumes_mid_epoch():
    data = list(range(10))
    shards = [ShardedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=7, drop_last=True) for r in (0, 1)]
    for s in shards:
        s.set_epoch(3)
    a, b = list(shards[0]), list(shards[1])
    assert len(a) == len(b) == 5 and sorted(a + b) == data  # disjoint and complete
    shards[0].set_epoch(4)
    assert list(shards[0]) != a  # a new order each epoch ...
    shards[0].set_epoch(3)
    assert list(shards[0]) == a  # ... the same order for the same (seed, epoch)
    shards[0].set_epoch(3, start=2)
    assert list(shards[0]) == a[2:] and len(shards[0]) == 3
    with pytest.raises(ValueError, match="start"):
        shards[0].set_epoch(0, start=6)


def test_make_loader_in_a_world_of_one(no_torchrun):
    dist.init("cpu")
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    loader = make_loader(data, 4, shuffle=True, seed=0, drop_last=True)
    loader.sampler.set_epoch(0)
    batches = [b[0] for b in loader]
    assert [len(b) for b in batches] == [4, 4]
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == 8 and set(seen.tolist()) <= set(range(10))
    state = torch.random.get_rng_state()
    list(loader)
    assert torch.equal(state, torch.random.get_rng_state()), "iterating the loader consumed the global RNG"


def test_batches_from_continues_mid_epoch_exactly(no_torchrun):
    dist.init("cpu")
    data = torch.utils.data.TensorDataset(torch.arange(10.0), torch.zeros(10))  # (sample, label) items
    loader = make_loader(data, 4, shuffle=True, seed=1)  # 2 full batches per epoch
    stream = dist.batches_from(loader)
    straight = [next(stream) for _ in range(7)]
    assert all(isinstance(b, torch.Tensor) and b.shape == (4,) for b in straight)
    assert not torch.equal(torch.cat(straight[0:2]), torch.cat(straight[2:4])), "epochs repeat the same order"
    resumed = dist.batches_from(loader, start=3)  # mid-epoch 1
    for expected in straight[3:]:
        assert torch.equal(next(resumed), expected)


def test_torchrun_two_ranks_train_identically(tmp_path):
    """Two gloo processes on the CPU: identical weights and EMA on both ranks, global counters."""
    worker = Path(__file__).with_name("dist_worker.py")
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(worker.parent.parent))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(worker), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    assert r0["device"] == r1["device"] == "cpu"
    for r in (r0, r1):
        assert r["steps"] == 4 and r["samples_seen"] == 4 * 16, (r["steps"], r["samples_seen"])
        assert r["model_type"] == "KarrasParam"  # DDP wrapped the loss, not the parameterization
        assert r["mean_rank"] == 0.5
    assert not torch.equal(r0["first_batch"], r1["first_batch"]), "both ranks trained on the same data"
    assert not torch.equal(r0["init"]["backbone.net.0.weight"], r1["init"]["backbone.net.0.weight"])
    for part in ("model", "ema"):
        for name, value in r0[part].items():
            assert torch.equal(value, r1[part][name]), f"{part}.{name} differs between ranks"
    moved = (r0["ema"]["backbone.net.0.weight"] - r0["init"]["backbone.net.0.weight"]).abs().max().item()
    assert moved > 1e-3, f"the EMA barely moved ({moved:.1e})"
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 4  # rank-averaged, so equal

    run = tmp_path / "run"
    # Only rank 0 writes; the step-2 checkpoint was pruned (keep_checkpoints=1), no temporary files remain.
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-000000004.pt", "config.json", "log.jsonl"]
    rows = (run / "log.jsonl").read_text().splitlines()
    assert len(rows) == 2, "log rows written by more than one rank"
