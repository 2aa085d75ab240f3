"""The 2D train/evaluate path shared by notebooks 02–04 and toy/twod.py, and the ablation's bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from pi2sb_lab.data.toy2d import cluster_accuracy
from pi2sb_lab.experiments.twod_ablation import Ablation, RunRecord, check_strategies, markdown_table, run_ablation, summarize
from pi2sb_lab.experiments.twod import (
    fixed_pairs,
    BridgeConfig,
    Metrics2D,
    evaluate,
    fit_bridge,
    make_problem,
    sample_bridge,
    single_thread,
    train_and_restore,
)

TINY = BridgeConfig(total_steps=120, batch_size=128, lr=3e-3, nfe=10)


@pytest.fixture(scope="module")
def problem():
    return make_problem(0, n_train=300, n_test=300)


def test_evaluate_against_direct_formulas(problem, exact):
    m = evaluate(problem.test_y, problem)
    exact(abs(m.dist - (problem.test_y.double() - problem.test_x.double()).norm(dim=1).mean().item()), what="dist")
    assert m.accuracy == cluster_accuracy(problem.test_y, problem.test_labels, problem.centers)
    perfect = evaluate(problem.test_x, problem)
    assert (perfect.dist, perfect.accuracy, perfect.sw2) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"test set's shape \(300, 2\)"):
        evaluate(problem.test_y[:10], problem)


def test_fit_is_reproducible_and_restores_thread_count():
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    x1 = x0 + 1.0
    config = BridgeConfig(total_steps=5, batch_size=8)
    before = torch.get_num_threads()
    a, b = (fit_bridge(*fixed_pairs(x0, x1), 2, config, seed=3) for _ in range(2))
    c = fit_bridge(*fixed_pairs(x0, x1), 2, config, seed=4)
    assert torch.equal(a.losses, b.losses) and not torch.equal(a.losses, c.losses)
    assert torch.equal(sample_bridge(a, x1, seed=1).x0, sample_bridge(b, x1, seed=1).x0)
    assert torch.get_num_threads() == before
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_learned_restorer_beats_no_restoration(problem):
    """A learned bound: even a 120-step Origin bridge is far closer to the truth than y itself."""
    base = evaluate(problem.test_y, problem).dist
    result = train_and_restore(problem, "origin", seed=0, config=TINY)
    assert result.restored.shape == problem.test_x.shape
    assert result.metrics.dist < 0.8 * base, f"restored dist {result.metrics.dist:.3f} vs degraded {base:.3f}"


@pytest.mark.parametrize("name", ["cat", "res", "noise"])
def test_every_strategy_runs_end_to_end(problem, name):
    result = train_and_restore(problem, name, ot_ode=True, seed=1, config=BridgeConfig(total_steps=3, nfe=3))
    assert result.strategy == name and result.restored.shape == (300, 2)
    assert all(math.isfinite(v) for v in result.metrics.as_dict().values())
    assert result.sampled.x0.shape == (300, 4 if name == "cat" else 2)


def test_ot_ode_limit_learned_sampler_gap_shrinks_like_sqrt_beta(problem):
    """I2SB Prop. 3.4 on a trained net: as β is scaled by c → 0 the SDE sampler's output converges to the
    OT-ODE's. The injected noise has std ∝ √c, so the gap should fall ~√10 ≈ 3.2× per decade."""
    gaps = []
    for c in (1.0, 0.1, 0.01):
        config = BridgeConfig(total_steps=120, batch_size=128, lr=3e-3, nfe=10, beta_scale=c)
        result = train_and_restore(problem, "origin", seed=0, config=config)
        ode = sample_bridge(result.fitted, problem.test_y, ot_ode=True).x0
        gaps.append((result.restored - ode).norm(dim=1).mean().item())
    assert gaps[0] > gaps[1] > gaps[2], f"SDE–ODE gaps not shrinking with c: {gaps}"
    assert gaps[2] < 0.3 * gaps[0], f"gap at c=0.01 is {gaps[2]:.4f}, at c=1 {gaps[0]:.4f} (√0.01 = 0.1)"


def test_bad_input_lists_what_is_accepted(problem):
    with pytest.raises(ValueError, match="unknown pseudo-hashing strategy 'swap'; valid names: origin, cat, res, "
                                         "noise"):
        train_and_restore(problem, "swap", config=TINY)
    with pytest.raises(ValueError, match="valid names: origin, cat, res, noise"):
        run_ablation(["origin", "Swap-I2SB"], config=TINY)  # raised before anything trains
    assert check_strategies(["Cat-I2SB", "origin", "cat"]) == ["cat", "origin"]
    with pytest.raises(ValueError, match="non-empty list"):
        check_strategies("origin")
    with pytest.raises(ValueError, match=r"parameterization must be one of \['eps', 'karras', 'x0'\]"):
        BridgeConfig(parameterization="v")
    with pytest.raises(ValueError, match="total_steps must be an integer >= 1"):
        BridgeConfig(total_steps=0)
    with pytest.raises(ValueError, match=r"lr_decay must be one of \['constant', 'cosine'\]"):
        BridgeConfig(lr_decay="linear")
    with pytest.raises(ValueError, match=r"degradation must be one of \['default', 'hard'\]"):
        make_problem(0, degradation="soft")
    with pytest.raises(ValueError, match=r"x0 and x1 must be \(P, D\) pair sets of one shape; got \(4, 2\) and "
                                         r"\(4, 3\)"):
        fixed_pairs(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"x_t must have shape \(N, 2\); got \(8, 3\)"):
        fit_bridge(torch.zeros(16, 2), lambda x, g: (torch.zeros(8, 3), torch.zeros(8, 3), None), 2,
                   BridgeConfig(total_steps=1, batch_size=8))


def test_summary_means_stds_and_paired_deltas(exact):
    def record(strategy, seed, dist):
        return RunRecord(strategy, False, seed, Metrics2D(dist, 1.0, dist / 2), 1.0, 0.0, torch.zeros(1, 2))

    origin, cat = [0.30, 0.20, 0.40], [0.25, 0.22, 0.30]
    records = [record("origin", s, d) for s, d in enumerate(origin)] + [record("cat", s, d) for s, d in enumerate(cat)]
    ablation = Ablation(records, {s: Metrics2D(0.5, 1.0, 0.25) for s in range(3)}, TINY, {}, 0.0)
    rows = summarize(ablation)
    assert [r.strategy for r in rows] == ["degraded y (no restoration)", "origin", "cat"]
    deltas = torch.tensor(cat, dtype=torch.float64) - torch.tensor(origin, dtype=torch.float64)
    exact(abs(rows[2].mean["dist"] - sum(cat) / 3), what="mean")
    exact(abs(rows[2].std["dist"] - torch.tensor(cat, dtype=torch.float64).std().item()), what="std")
    exact(abs(rows[2].delta_dist[0] - deltas.mean().item()), what="paired mean")
    exact(abs(rows[2].delta_dist[1] - deltas.std().item()), what="paired std")
    assert rows[2].wins == 2 and rows[1].delta_dist is None
    table = markdown_table(rows)
    assert "| cat | off | 3 | 0.257 ± 0.040 | -0.043 ± 0.060 | 2/3 |" in table, table
