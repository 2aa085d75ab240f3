"""2D toys: samplers, the blind degradation, cluster accuracy and sliced W2."""

from __future__ import annotations

import math

import pytest
import torch

from pi2sb_lab.data.toy2d import (
    DISTRIBUTIONS,
    BlindDegradation2D,
    cluster_accuracy,
    cluster_centers,
    clusters,
    moons,
    rings,
    sample,
    sliced_wasserstein2,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --- distributions -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_shapes_dtypes_and_determinism(name):
    points, labels = sample(name, 100, generator=_gen(0))
    assert points.shape == (100, 2) and points.dtype == torch.float32
    assert labels.shape == (100,) and labels.dtype == torch.int64
    assert sample(name, 10, generator=_gen(0), dtype=torch.float64).points.dtype == torch.float64
    again = sample(name, 100, generator=_gen(0))
    assert torch.equal(points, again.points) and torch.equal(labels, again.labels)
    assert not torch.equal(points, sample(name, 100, generator=_gen(1)).points)


def test_unknown_distribution():
    with pytest.raises(ValueError, match="clusters, moons, rings"):
        sample("spirals", 10)


def test_cluster_labels_match_their_clusters():
    k, radius, std, n = 5, 3.0, 0.1, 4000
    points, labels = clusters(n, k=k, radius=radius, std=std, generator=_gen(2), dtype=torch.float64)
    centers = cluster_centers(k, radius=radius, dtype=torch.float64)
    # Centers are 2·3·sin(π/5) ≈ 3.5 apart, 17 std: every point is nearest its own.
    assert cluster_accuracy(points, labels, centers) == 1.0
    assert set(labels.tolist()) == set(range(k))
    for j in range(k):
        members = points[labels == j]
        err = (members.mean(dim=0) - centers[j]).norm().item()
        bound = 5 * std * math.sqrt(2 / len(members))  # 5σ of the 2D mean's norm, generous
        assert err <= bound, f"cluster {j}: mean {err:.4f} from its center (bound {bound:.4f})"
        spread = members.std(dim=0).mean().item()
        assert abs(spread - std) <= 0.2 * std, f"cluster {j} std {spread:.4f} vs {std}"


def test_moons_and_rings_lie_on_their_curves_without_noise():
    scale = 1.5
    points, labels = moons(500, noise=0.0, scale=scale, generator=_gen(3), dtype=torch.float64)
    unscaled = points / scale + torch.tensor([0.5, 0.25], dtype=torch.float64)
    # Upper moon: unit circle about (0, 0); lower moon: unit circle about (1, 0.5).
    centre = torch.where(labels[:, None] == 0, torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5])).double()
    assert ((unscaled - centre).norm(dim=1) - 1).abs().max().item() <= 1e-12
    assert set(labels.tolist()) == {0, 1}

    radii = (0.5, 1.0, 2.5)
    points, labels = rings(500, radii=radii, std=0.0, generator=_gen(4), dtype=torch.float64)
    expected = torch.tensor(radii, dtype=torch.float64)[labels]
    assert (points.norm(dim=1) - expected).abs().max().item() <= 1e-12
    # Ring probabilities ∝ radius: 0.125, 0.25, 0.625.
    frac_outer = (labels == 2).double().mean().item()
    assert abs(frac_outer - 0.625) <= 5 * math.sqrt(0.625 * 0.375 / 500), frac_outer


# --- blind degradation ----------------------------------------------------------


def test_degradation_shapes_ranges_and_grouping():
    x = clusters(50, generator=_gen(5)).points
    deg = BlindDegradation2D()
    out = deg(x, generator=_gen(6), partners=4)
    assert out.x.shape == out.y.shape == (200, 2)
    assert torch.equal(out.source, torch.arange(50).repeat_interleave(4))
    assert torch.equal(out.x, x[out.source])
    p = out.params
    for value, (lo, hi) in [
        (p.angle, deg.angle_range),
        (p.scale, deg.scale_range),
        (p.shift, deg.shift_range),
        (p.noise, deg.noise_range),
    ]:
        assert lo <= value.min().item() and value.max().item() <= hi, (value.min(), value.max(), lo, hi)
    assert p.shift.shape == (200, 2) and p.as_vector().shape == (200, 5)
    again = deg(x, generator=_gen(6), partners=4)
    assert torch.equal(out.y, again.y) and torch.equal(p.angle, again.params.angle)


def test_degradation_formula_is_scaled_rotation_plus_shift():
    """With no noise, y = s R(θ) x + b exactly (recomputed from the returned params)."""
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.5, 0.5]], dtype=torch.float64)
    out = BlindDegradation2D(noise_range=(0.0, 0.0))(x, generator=_gen(7), partners=3)
    p = out.params
    for i in range(out.x.shape[0]):
        c, s = math.cos(p.angle[i].item()), math.sin(p.angle[i].item())
        x0, x1 = out.x[i].tolist()
        want = [p.scale[i].item() * (c * x0 - s * x1) + p.shift[i, 0].item(),
                p.scale[i].item() * (s * x0 + c * x1) + p.shift[i, 1].item()]
        # allclose, not max(abs(a − b) …): a NaN anywhere fails it
        assert torch.allclose(out.y[i], torch.tensor(want, dtype=out.y.dtype), rtol=0, atol=1e-12), (out.y[i], want)


def test_default_degradation_is_blind_yet_restorable():
    points, labels = clusters(2000, generator=_gen(8))
    out = BlindDegradation2D()(points, generator=_gen(9), partners=2)
    # Blind: the two partners of one clean point land far apart compared to the cluster std 0.15.
    partner_gap = (out.y[0::2] - out.y[1::2]).norm(dim=1)
    assert partner_gap.min().item() > 0
    assert partner_gap.mean().item() > 0.4, f"partners only {partner_gap.mean():.3f} apart on average"
    # Restorable: even the naive nearest-center rule on y finds the clean cluster.
    acc = cluster_accuracy(out.y, labels[out.source], cluster_centers())
    assert acc >= 0.99, f"nearest-center accuracy on y is {acc:.4f}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"angle_range": (0.5, -0.5)},
        {"scale_range": (1.2, 0.8)},
        {"shift_range": (0.3, -0.3)},
        {"noise_range": (0.1, 0.0)},
        {"scale_range": (-1.0, 1.0)},
        {"noise_range": (-0.1, 0.1)},
    ],
)
def test_bad_ranges_are_rejected(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BlindDegradation2D(**kwargs)


def test_degradation_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        BlindDegradation2D()(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="partners"):
        BlindDegradation2D()(torch.zeros(4, 2), partners=0)


# --- metrics --------------------------------------------------------------------------


def test_cluster_accuracy_counts_nearest_center_hits():
    centers = cluster_centers(4)
    points = centers.repeat(2, 1) * 0.9  # each near its own center
    labels = torch.arange(4).repeat(2)
    assert cluster_accuracy(points, labels, centers) == 1.0
    wrong = labels.clone()
    wrong[:3] = (wrong[:3] + 1) % 4
    assert cluster_accuracy(points, wrong, centers) == pytest.approx(5 / 8, abs=1e-15)


def test_sliced_w2_is_zero_on_itself_and_permutations():
    a = moons(300, generator=_gen(10), dtype=torch.float64).points
    perm = torch.randperm(300, generator=_gen(11))
    assert sliced_wasserstein2(a, a, generator=_gen(12)).item() == 0.0
    assert sliced_wasserstein2(a, a[perm], generator=_gen(12)).item() == 0.0


def test_sliced_w2_of_a_shift():
    """b = a + s: each projection is exactly (u·s)², so SW₂² = mean over P directions of ‖s‖² cos²φ.

    For φ uniform, cos²φ has mean ½ and variance E[cos⁴] − ¼ = ⅜ − ¼ = ⅛, so the
    P-direction estimate is ‖s‖²/2 with standard error ‖s‖²/√(8P). Assert within 5 of them.
    """
    a = clusters(500, generator=_gen(13), dtype=torch.float64).points
    s = torch.tensor([0.6, -0.8], dtype=torch.float64)  # ‖s‖² = 1
    n_projections = 400
    got = sliced_wasserstein2(a, a + s, n_projections=n_projections, generator=_gen(14)).item()
    want = s.square().sum().item() / 2
    tol = 5 * s.square().sum().item() / math.sqrt(8 * n_projections)
    assert abs(got - want) <= tol, f"SW2² of a shift {got:.4f}, expected {want:.4f} ± {tol:.4f}"


def test_sliced_w2_rejects_unequal_clouds():
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein2(torch.zeros(5, 2), torch.zeros(6, 2))
