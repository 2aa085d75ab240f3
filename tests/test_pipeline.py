"""The pipeline every scale shares: training pairs (degrade → hash → condition) and restore (endpoint →
sample → decode), checked with an oracle bridge whose exact answer is known."""

from __future__ import annotations

import pytest
import torch

from pi2sb_lab.conditioning import Conditioning
from pi2sb_lab.hashing import Cat, Noise, Origin, Res
from pi2sb_lab.parameterization import X0Param
from pi2sb_lab.pipeline import degrade_pair_fn, pool_pair_fn, restore, restore_map, training_pairs
from pi2sb_lab.schedule import SymmetricSchedule

SCHED = SymmetricSchedule()
LQ = Conditioning(lq=True)


def clean_of(y):
    """The toy's exact inverse degradation: y = −2x, so x = −y/2."""
    return -0.5 * y


def oracle(strategy):
    """A bridge that reads y from its lq condition and returns the true hashed clean endpoint x̂ = H(x, y)."""
    return X0Param(lambda x_t, t, cond: strategy.encode(clean_of(cond), cond).x_hat, SCHED)


@pytest.mark.parametrize("strategy", [Origin(), Cat(), Res()], ids=lambda s: s.name)
@pytest.mark.parametrize("ot_ode", [False, True])
def test_restore_with_an_oracle_returns_the_clean_images(strategy, ot_ode, exact):
    y = torch.randn(7, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls = []
    out = restore(oracle(strategy), y, SCHED, strategy, nfe=5, ot_ode=ot_ode, conditioning=LQ, chunk=3,
                  callback=lambda t, x_t, pred_x0, rows: calls.append((float(t), rows, x_t.shape[0])))
    exact((out.x - clean_of(y)).abs().max().item(), what="x")
    assert out.x_hat.shape == (7, strategy.channels(2), 4, 4)
    # one call per step per chunk, each with its rows: 3 + 3 + 1 samples
    assert [r for _, r, _ in calls[::5]] == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert len(calls) == 15 and [n for _, _, n in calls[::5]] == [3, 3, 1]
    assert out.sampled.trajectory.shape[0] == 2  # the endpoints only, by default


def test_chunking_does_not_change_a_deterministic_restoration():
    y = torch.randn(10, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    net = X0Param(lambda x_t, t, cond: 0.5 * x_t + 0.1 * t.reshape(-1, 1, 1, 1), SCHED)
    whole = restore(net, y, SCHED, Res(), nfe=4, ot_ode=True)
    pieces = restore(net, y, SCHED, Res(), nfe=4, ot_ode=True, chunk=4)
    assert torch.equal(whole.x, pieces.x) and torch.equal(whole.x_hat, pieces.x_hat)
    assert not torch.equal(whole.x, y)  # the map did something
    clamped = restore(net, y * 10, SCHED, Origin(), nfe=4, ot_ode=True, clamp=(-1.0, 1.0))
    assert clamped.x.abs().max() <= 1.0


def test_one_seed_per_sample_makes_each_restoration_independent_of_its_batch():
    """With one seed per row, a sample's noise comes from its own generator: restoring it in a batch, in
    chunks, or alone gives the same result (what full/restore.py needs to shard over ranks)."""
    y = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # A row-wise map: no arithmetic mixes samples, so any difference would come from the noise.
    net = X0Param(lambda x_t, t, cond: 0.5 * x_t + 0.1 * t.reshape(-1, 1, 1, 1), SCHED)
    seeds = [11, 3, 11, 7, 0]
    whole = restore(net, y, SCHED, Origin(), nfe=4, seed=seeds, chunk=2)
    for i, s in enumerate(seeds):
        alone = restore(net, y[i : i + 1], SCHED, Origin(), nfe=4, seed=[s])
        assert torch.equal(whole.x[i : i + 1], alone.x), f"sample {i} depends on its batch"
    # The noise does act: equal inputs with equal seeds agree, other seeds differ.
    again = restore(net, y[[0, 0]], SCHED, Origin(), nfe=4, seed=[11, 12])
    assert torch.equal(again.x[0], whole.x[0]) and not torch.equal(again.x[0], again.x[1])
    with pytest.raises(ValueError, match="one per sample needs 5 seeds"):
        restore(net, y, SCHED, Origin(), nfe=4, seed=[1, 2])
    with pytest.raises(ValueError, match="seed must be an int >= 0 or a list"):
        restore(net, y, SCHED, Origin(), nfe=4, seed=[1, 2, -3, 4, 5])
    from pi2sb_lab.sampler import sample
    with pytest.raises(ValueError, match="one per sample needs 5 generators"):
        sample(net, y, SCHED, nfe=2, generator=[torch.Generator()])
    with pytest.raises(TypeError, match=r"generator\[1\] must be a torch.Generator"):
        sample(net, y[:2], SCHED, nfe=2, generator=[torch.Generator(), 3])


def test_restore_map_is_the_same_pipeline(exact):
    y = torch.randn(5, 2, dtype=torch.float64)
    for strategy in (Origin(), Cat(), Res()):
        x = restore_map(lambda y_hat: strategy.encode(clean_of(y), y).x_hat, y, strategy)
        exact((x - clean_of(y)).abs().max().item())


def test_pool_pairs_hash_rows_and_build_conditions():
    x, y = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    params = torch.rand(6, 9)
    pair_fn = pool_pair_fn(x, y, Cat(), Conditioning(lq=True, da=True), params)
    rows = torch.tensor([4, 1])
    x_hat, y_hat, cond = pair_fn(rows, torch.Generator())
    assert torch.equal(x_hat, torch.cat([x[rows], y[rows]], 1)) and torch.equal(y_hat, torch.cat([y[rows]] * 2, 1))
    assert torch.equal(cond["image"], y[rows]) and torch.equal(cond["degradation"], params[rows])
    with pytest.raises(ValueError, match="same shape"):
        pool_pair_fn(x, y[:, :, :2], Origin())
    with pytest.raises(ValueError, match="one row per pair"):
        pool_pair_fn(x, y, Origin(), params=params[:3])


def test_degrade_pair_fn_draws_the_degradation_first():
    """Degradations come first from the step's generator, so Origin and Noise trained with one seed see the
    same degraded pairs; Noise's hash noise comes after."""
    x = torch.randn(4, 3)

    def degrade_fn(x, generator):
        return x, x + torch.randn(x.shape, generator=generator), None

    x0_a, y_a, _ = degrade_pair_fn(degrade_fn, Origin())(x, torch.Generator().manual_seed(5))
    x0_b, y_b, _ = degrade_pair_fn(degrade_fn, Noise(0.1))(x, torch.Generator().manual_seed(5))
    assert torch.equal(y_a, y_b) and torch.equal(x0_a, x) and not torch.equal(x0_b, x)
    assert (x0_b - x).abs().max() < 1.0  # x̂ = x + λε with λ = 0.1
    direct = training_pairs(x, y_a, Origin(), Conditioning(lq=True))
    assert torch.equal(direct[2], y_a)


def test_bad_arguments_are_named():
    y = torch.zeros(2, 1, 4, 4)
    net = X0Param(lambda x_t, t, cond: x_t, SCHED)
    with pytest.raises(ValueError, match="seed must be an int >= 0 or a list of them .*; got -1"):
        restore(net, y, SCHED, Origin(), nfe=2, seed=-1)
    with pytest.raises(ValueError, match="chunk must be None or an int >= 1; got 0"):
        restore(net, y, SCHED, Origin(), nfe=2, chunk=0)
    with pytest.raises(ValueError, match="non-empty batch"):
        restore(net, y[:0], SCHED, Origin(), nfe=2)
