"""Cor. 4.2 made executable: the forced error against closed forms, hashing removes it, restoring keeps its floor."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.optimize
import torch

from pi2sb_lab.counterexample import (
    PairPosteriorOracle,
    PairSet,
    check_symmetric,
    expected_forced_error,
    forced_error,
    forward_error,
    monge_example,
    one_to_many,
    oracle_forward_map,
    oracle_restoring_map,
    restoring_error,
    shared_partners,
)
from pi2sb_lab.hashing import STRATEGIES, EmpiricalPosteriorDenoiser, LQStdLevel, Noise, get_strategy
from pi2sb_lab.schedule import ConstantSchedule, Schedule, SymmetricSchedule
from pi2sb_lab.experiments.twod import BridgeConfig, fit_bridge, fixed_pairs, learned_map, sample_bridge

LIMIT = SymmetricSchedule().scaled(1e-3)  # β → 0: the OT-ODE limit of I2SB Prop. 3.4


def pairwise_spread(points: torch.Tensor) -> float:
    """(1/M) Σ_j ‖y_j − ȳ‖² by the other route: (1/(2M²)) Σ_{j,k} ‖y_j − y_k‖², no mean involved."""
    m = points.shape[0]
    return sum((points[j] - points[k]).square().sum().item() for j, k in itertools.product(range(m), repeat=2)) \
        / (2 * m * m)


def hull_distance(points: torch.Tensor, target: torch.Tensor) -> float:
    """Distance from ``target`` (D,) to the convex hull of ``points`` (K, D): a non-negative least-squares fit of
    weights that sum to one (the sum enforced by a heavily weighted extra row)."""
    a = np.vstack([points.numpy().T, 1e3 * np.ones(points.shape[0])])
    weights, _ = scipy.optimize.nnls(a, np.concatenate([target.numpy(), [1e3]]))
    return float(np.linalg.norm(points.numpy().T @ weights - target.numpy()))


def strategy(name: str, clean: torch.Tensor):
    """Noise needs a denoiser to decode; the exact one for the clean points of the pair set."""
    return get_strategy(name, denoiser=EmpiricalPosteriorDenoiser(clean)) if name == "noise" else get_strategy(name)


@pytest.mark.parametrize("gap", [0.5, 2.0, 3.7])
def test_monge_example_forced_error_is_a_quarter_of_the_gap_squared(gap, exact):
    pairs = monge_example(gap)
    fe = forced_error(pairs.x, pairs.y)
    exact(abs(fe.mse - gap**2 / 4), what="forced")
    assert (fe.n_starts, fe.one_to_one) == (1, False)
    # The best map sends x to the partners' midpoint, and a flow of a perfect model does exactly that.
    exact((fe.best_ends - pairs.y.mean(0)).abs().max().item(), what="best map")
    err = forward_error(oracle_forward_map(pairs.x, pairs.y, LIMIT, nfe=40), pairs.x, pairs.y)
    exact(abs(err.mse - gap**2 / 4), what="OT-ODE flow")
    exact((err.reached - pairs.y.mean(0)).abs().max().item(), what="flow lands on the midpoint")


@pytest.mark.parametrize("m", [2, 3, 7])
def test_forced_error_is_the_partner_spread_for_any_partners(m, gen, exact):
    # Clean points far apart, each with its partners off to one side: no flow strays into another group.
    clean = 20 * torch.randn(4, 3, generator=gen, dtype=torch.float64)
    partners = clean[:, None] + torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64) \
        + torch.randn(4, m, 3, generator=gen, dtype=torch.float64)
    x = clean.repeat_interleave(m, dim=0)
    y = partners.reshape(-1, 3)
    perm = torch.randperm(x.shape[0], generator=gen)  # grouping must not rely on row order
    fe = forced_error(x[perm], y[perm])
    expected = sum(pairwise_spread(p) for p in partners) / 4
    exact(abs(fe.mse - expected), what="spread")
    assert fe.n_starts == 4 and not fe.one_to_one
    # No map does better: the flow of a perfect model (here not symmetric, so not the mean) is above it ...
    flow = forward_error(oracle_forward_map(x, y, LIMIT, nfe=20), x, y)
    assert flow.mse >= fe.mse - 1e-12, (flow.mse, fe.mse)
    # ... which any map is (a zero, constant or identity map too): what the perfect flow does that they do
    # not is land on a weighted mean of its own start's partners, inside their convex hull.
    gaps = [hull_distance(partners[i // m], flow.reached[i]) for i in range(x.shape[0])]
    assert np.isfinite(gaps).all() and max(gaps) < 1e-8, f"flow endpoints outside their partners' hull: {gaps}"


@pytest.mark.parametrize("name", ["cat", "res", "noise"])
def test_hashing_gives_each_pair_its_own_start_and_a_one_to_one_flow(name, gen, exact):
    partners = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    pairs = one_to_many(torch.tensor([0.4, -0.2], dtype=torch.float64), partners)
    x_hat, y_hat = get_strategy(name).encode(pairs.x, pairs.y, generator=gen)
    fe = forced_error(x_hat, y_hat)
    assert (fe.mse, fe.n_starts, fe.one_to_one) == (0.0, 5, True)
    err = forward_error(oracle_forward_map(x_hat, y_hat, LIMIT, nfe=40), x_hat, y_hat)
    exact(err.mse, 1e-10, what=f"{name} flow reaches every partner")


def test_fresh_noise_hashes_do_not_tell_partners_apart(gen, exact):
    """One Noise draw separates the starts, but with a constant λ the start's law is the same for every
    partner: what a net trained on fresh draws can reach is Origin's floor, exactly (uniform posterior)."""
    pairs = one_to_many(torch.tensor([0.3, 0.1], dtype=torch.float64),
                        torch.randn(3, 2, generator=gen, dtype=torch.float64))
    spread = pairwise_spread(pairs.y)
    for level in (0.05, 1.0):
        exact(abs(expected_forced_error(pairs, Noise(level), draws=4, generator=gen) - spread), what=str(level))
    for name in ("cat", "res"):
        assert expected_forced_error(pairs, get_strategy(name)) == 0.0
    # A level that depends on y carries some of y into the start: strictly between.
    partial = expected_forced_error(pairs, Noise(LQStdLevel(0.1)), draws=64, generator=gen)
    assert 0.0 < partial < spread, (partial, spread)
    with pytest.raises(ValueError, match="λ"):
        expected_forced_error(pairs, Noise(0.0))


def test_origin_forced_error_matches_the_hashed_starts_of_origin(gen):
    pairs = monge_example()
    fe = forced_error(*get_strategy("origin").encode(pairs.x, pairs.y))
    assert fe.mse == forced_error(pairs.x, pairs.y).mse == 1.0


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_restoring_one_x_with_many_partners_has_no_floor(name, gen, exact):
    """Cor. 4.2 is about the forward direction: the many-to-one restoring map exists, hashed or not."""
    partners = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    pairs = one_to_many(torch.tensor([1.0, 0.5], dtype=torch.float64), partners)
    st = strategy(name, pairs.x[:1])
    x_hat, y_hat = st.encode(pairs.x, pairs.y, generator=gen)
    err = restoring_error(oracle_restoring_map(x_hat, y_hat, LIMIT, nfe=40), pairs, st)
    assert err.forced.mse == 0.0 and err.forced.one_to_one
    exact(err.mse, 1e-10, what=name)


def test_clean_points_sharing_a_partner_leave_the_same_floor_for_every_strategy(gen, exact):
    clean = torch.tensor([[0.2, 0.1], [0.0, 1.2], [0.5, -0.3]], dtype=torch.float64)  # none at 0: a zero map is wrong
    partners = torch.tensor([[2.0, 0.0], [2.5, 1.0]], dtype=torch.float64)
    pairs = shared_partners(clean, partners)
    assert len(pairs) == 6 and pairs.source.tolist() == [0, 0, 1, 1, 2, 2]
    floor = pairwise_spread(clean)  # every y has all three clean points as partners
    for name in STRATEGIES:
        st = strategy(name, clean)
        x_hat, y_hat = st.encode(pairs.x, pairs.y, generator=gen)
        # A random sampler (SDE) is bounded too: one draw per distinct start, shared by its rows.
        err = restoring_error(oracle_restoring_map(x_hat, y_hat, SymmetricSchedule(), nfe=20, ot_ode=False,
                                                   generator=gen), pairs, st)
        exact(abs(err.forced.mse - floor), what=f"{name} floor")
        assert err.mse >= floor - 1e-12, (name, err.mse, floor)  # any map meets this bound ...
        # ... the perfect sampler also commits: as Σ_t → 0 its pair posterior is one pair, so every restored
        # point is one of the clean points (a zero, constant or identity map restores none of them).
        miss = torch.cdist(err.reached, clean).min(dim=1).values
        exact(miss, 1e-10, what=f"{name} restores a clean point")


def test_learned_models_forward_stuck_restoring_fine():
    """On a trained net: the forward OT-ODE flow of Origin cannot split (exact bound); restoring works."""
    pairs = monge_example()
    origin = get_strategy("origin")
    config = BridgeConfig(total_steps=300, batch_size=64, lr=3e-3, nfe=20)
    x, y = pairs.x.float(), pairs.y.float()
    forward = fit_bridge(*fixed_pairs(y, x), 2, config, ot_ode=True, seed=0)  # swapped: x̂ is the start
    f_err = forward_error(lambda s: sample_bridge(forward, s).x0.double(), pairs.x, pairs.y)
    assert f_err.mse >= 1.0 - 1e-6, f"learned forward flow beat the forced error 1.0: {f_err.mse:.4f}"
    # Any map meets that bound; the learned flow also ends on the partners' segment (measured: 0.003 from it,
    # near one partner, error 1.93 ≤ 2 = landing on a partner), where a zero map is 0.75 away.
    off = hull_distance(pairs.y, f_err.reached[0])
    assert off < 0.1 and f_err.mse < 2.1, f"learned forward flow ends {off:.3f} from the partners' segment " \
                                          f"(error {f_err.mse:.3f})"
    backward = fit_bridge(*fixed_pairs(x, y), 2, config, ot_ode=True, seed=0)
    r_err = restoring_error(lambda s: sample_bridge(backward, s).x0.double(), pairs, origin)
    assert r_err.mse < 0.02, f"learned Origin restoring error {r_err.mse:.4f} (floor 0) should be < 0.02"


def test_oracle_is_the_posterior_mean_over_pairs(gen, exact):
    x0 = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    x1 = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    sched = SymmetricSchedule()
    x_t = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(7, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    got = PairPosteriorOracle(x0, x1, sched)(x_t, t)
    for b in range(7):
        s2, sb2 = sched.sigma2(t[b]), sched.sigma_bar2(t[b])
        mean = (sb2 * x0 + s2 * x1) / (s2 + sb2)
        var = s2 * sb2 / (s2 + sb2)
        dens = torch.exp(-(x_t[b] - mean).square().sum(1) / (2 * var))  # N(x_t; μ_p, Σ I) up to a shared factor
        exact((got[b] - (dens[:, None] * x0).sum(0) / dens.sum()).abs().max().item())
    # At t = 1 (Σ = 0) the weight is all on the nearest μ_1 = x1_p.
    assert torch.equal(PairPosteriorOracle(x0, x1, sched)(x1[2:3] + 1e-3, torch.tensor(1.0)), x0[2:3])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"same shape.*\(3, 2\).*\(3, 4\)"):
        PairSet(torch.zeros(3, 2), torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="dimension"):
        one_to_many(torch.zeros(3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="dimension"):
        shared_partners(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="one row per pair"):
        forced_error(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="unknown pseudo-hashing strategy 'swap'; valid names: origin, cat"):
        get_strategy("swap")
    with pytest.raises(ValueError, match=r"direction must be one of \['forward', 'restore'\]; got 'back'"):
        learned_map(monge_example(), get_strategy("origin"), "back")

    class Rising(Schedule):
        def beta(self, t):
            return 1.0 + torch.as_tensor(t, dtype=torch.float64)

    with pytest.raises(ValueError, match="symmetric schedule"):
        check_symmetric(Rising())
    check_symmetric(ConstantSchedule(0.3))
    check_symmetric(SymmetricSchedule(0.1, 0.3))
