"""Pseudo-hashing (P-I2SB eq. 11–14, 18): inverses invert, partners get distinct starts, the denoiser is exact."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pi2sb_lab.hashing import (
    STRATEGIES,
    Cat,
    ConstantLevel,
    Denoiser,
    EmpiricalPosteriorDenoiser,
    LQStdLevel,
    Noise,
    Origin,
    Res,
    get_strategy,
)

SHAPES = {"images": (3, 2, 5, 4), "points": (7, 2)}


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    return x, y


# --- exact inverses ---------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("cls", [Origin, Cat])
def test_round_trip_is_bitwise_exact(cls, shape):
    x, y = _pair(shape)
    x_hat, y_hat = cls().encode(x, y)
    assert torch.equal(cls().decode(x_hat, y), x)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_res_round_trip_to_float64_rounding(shape):
    x, y = _pair(shape)
    x_hat, y_hat = Res().encode(x, y)
    err = (Res().decode(x_hat, y) - x).abs().max().item()
    # y − (y − x) loses at most an ulp of |y − x| ≤ 2: ~4.4e-16.
    assert err <= 1e-12, f"Res round-trip error {err:.3e}"


def test_res_uses_eq13_sign_and_keeps_displacement():
    """x̂ = R = y − x (eq. 13), so the bridge displacement ŷ − x̂ is x for every partner (Fig. 3a)."""
    x, y = _pair(SHAPES["points"])
    x_hat, y_hat = Res().encode(x, y)
    assert torch.equal(x_hat, y - x)
    assert torch.equal(y_hat, y)
    assert (y_hat - x_hat - x).abs().max().item() <= 1e-12


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_cat_doubles_channels_and_pairs_y_with_itself(shape):
    x, y = _pair(shape)
    c = shape[1]
    cat = Cat()
    x_hat, y_hat = cat.encode(x, y)
    assert cat.channels(c) == 2 * c
    assert x_hat.shape[1] == y_hat.shape[1] == 2 * c
    assert torch.equal(x_hat[:, :c], x) and torch.equal(x_hat[:, c:], y)
    assert torch.equal(y_hat[:, :c], y) and torch.equal(y_hat[:, c:], y)
    assert torch.equal(cat.endpoint(y), y_hat)
    for strategy in (Origin(), Res(), Noise()):
        assert strategy.channels(c) == c
        assert torch.equal(strategy.endpoint(y), y)


def test_cat_decode_rejects_wrong_channel_count():
    x, y = _pair(SHAPES["images"])
    with pytest.raises(ValueError, match="twice the channels"):
        Cat().decode(x, y)


# --- Cor. 4.2: one x, two partners -----------------------------------------------


def test_partners_get_distinct_starts_except_origin():
    x = torch.tensor([[0.3, -0.7]], dtype=torch.float64).expand(2, 2)
    y = torch.tensor([[1.0, 0.5], [-0.4, 1.2]], dtype=torch.float64)  # y1 ≠ y2
    gap_y = (y[0] - y[1]).norm().item()

    def start_gap(strategy, **kw):
        x_hat, _ = strategy.encode(x, y, **kw)
        return (x_hat[0] - x_hat[1]).norm().item()

    assert start_gap(Origin()) == 0.0  # the infeasible case of Cor. 4.2
    # Cat and Res move the start by exactly the partners' difference.
    assert math.isclose(start_gap(Cat()), gap_y, rel_tol=1e-12), (start_gap(Cat()), gap_y)
    assert math.isclose(start_gap(Res()), gap_y, rel_tol=1e-12), (start_gap(Res()), gap_y)
    lam = 0.05
    gap_noise = start_gap(Noise(lam), generator=torch.Generator().manual_seed(1))
    assert gap_noise > 0.1 * lam, f"Noise starts only {gap_noise:.3e} apart at λ={lam}"


# --- registry and validation ------------------------------------------------------


def test_registry_and_unknown_name():
    assert set(STRATEGIES) == {"origin", "cat", "res", "noise"}
    assert isinstance(get_strategy("Cat-I2SB"), Cat)
    assert get_strategy("noise", level=0.2).level == ConstantLevel(0.2)
    with pytest.raises(ValueError) as info:
        get_strategy("swap")
    for name in ("origin", "cat", "res", "noise"):
        assert name in str(info.value)


@pytest.mark.parametrize("name", ["origin", "cat", "res", "noise"])
def test_mismatched_shapes_are_rejected(name):
    x = torch.zeros(4, 3, 8, 8)
    y = torch.zeros(4, 3, 4, 4)
    with pytest.raises(ValueError) as info:
        get_strategy(name).encode(x, y)
    assert "(4, 3, 8, 8)" in str(info.value) and "(4, 3, 4, 4)" in str(info.value)


def test_unbatched_input_is_rejected():
    with pytest.raises(ValueError, match="batched"):
        Origin().encode(torch.zeros(2), torch.zeros(2))


# --- Noise-I2SB ---------------------------------------------------------------------


def test_noise_encode_is_reproducible_and_adds_lambda_eps():
    x, y = _pair(SHAPES["images"])
    noise = Noise(LQStdLevel(0.3))
    a = noise.encode(x, y, generator=torch.Generator().manual_seed(7)).x_hat
    b = noise.encode(x, y, generator=torch.Generator().manual_seed(7)).x_hat
    c = noise.encode(x, y, generator=torch.Generator().manual_seed(8)).x_hat
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3
    # x̂ − x = λ(y)_n ε with one level per sample, broadcast over (C, H, W).
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    lam = 0.3 * y.reshape(3, -1).std(dim=1, correction=0)
    assert (a - x - lam[:, None, None, None] * eps).abs().max().item() <= 1e-14


def test_noise_level_zero_is_identity_and_bad_level_is_rejected():
    x, y = _pair(SHAPES["points"])
    assert torch.equal(Noise(0.0).encode(x, y).x_hat, x)
    with pytest.raises(ValueError, match="level"):
        Noise(lambda y: torch.ones(y.shape[0] + 1)).encode(x, y)


def test_noise_decode_without_denoiser_explains_what_to_pass():
    x, y = _pair(SHAPES["points"])
    with pytest.raises(ValueError, match="denoiser"):
        Noise().decode(x, y)


def test_noise_round_trip_with_empirical_denoiser():
    """The clean set holds the training points; at small λ the posterior mean returns each one."""
    x, y = _pair((32, 2), seed=3)
    min_gap = torch.pdist(x).min().item()
    # With λ = gap/10, a neighbour at distance d ≥ gap gets relative weight
    # exp(−(d² + 2λ ε·(x_i − x_j)) / (2λ²)) ≤ exp(−50 + 10·|ε·u|) ≈ e⁻²⁰ for |ε·u| ≤ 3,
    # so the posterior mean sits within ~gap·e⁻²⁰ of the true point.
    lam = min_gap / 10
    noise = Noise(lam, denoiser=EmpiricalPosteriorDenoiser(x))
    assert isinstance(noise.denoiser, Denoiser)
    x_hat, _ = noise.encode(x, y, generator=torch.Generator().manual_seed(0))
    err = (noise.decode(x_hat, y) - x).abs().max().item()
    assert err <= 1e-6, f"Noise round trip error {err:.3e} at λ={lam:.4f} (closest clean pair {min_gap:.3f} apart)"
    # At a level comparable to the gap between points the estimate is a blend: not exact.
    blurred = dataclasses.replace(noise, level=ConstantLevel(5 * min_gap))
    x_hat, _ = blurred.encode(x, y, generator=torch.Generator().manual_seed(0))
    assert (blurred.decode(x_hat, y) - x).abs().max().item() > 1e-3


def _brute_force_posterior_mean(points, query, sigma):
    """Σ w_i x_i with w_i ∝ exp(−‖x̃ − x_i‖²/(2σ²)), in plain Python floats."""
    flat = [[float(v) for v in p.reshape(-1)] for p in points]
    out = []
    for q, s in zip(query, sigma):
        q = [float(v) for v in q.reshape(-1)]
        d2 = [sum((a - b) ** 2 for a, b in zip(q, p)) for p in flat]
        m = min(d2)
        w = [math.exp(-(d - m) / (2 * float(s) ** 2)) for d in d2]
        total = sum(w)
        out.append([sum(wi * p[j] for wi, p in zip(w, flat)) / total for j in range(len(q))])
    return torch.tensor(out, dtype=torch.float64).reshape(query.shape)


@pytest.mark.parametrize("shape", [(2,), (1, 3, 2)], ids=["points", "images"])
def test_empirical_denoiser_matches_brute_force(shape):
    g = torch.Generator().manual_seed(5)
    points = torch.randn(9, *shape, generator=g, dtype=torch.float64)
    query = torch.randn(6, *shape, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.05, 0.2, 0.5, 1.0, 3.0, 0.01], dtype=torch.float64)
    got = EmpiricalPosteriorDenoiser(points, chunk=4)(query, sigma)  # chunk < N exercises chunking
    want = _brute_force_posterior_mean(points, query, sigma)
    err = (got - want).abs().max().item()
    assert err <= 1e-10, f"posterior mean differs from brute force by {err:.3e}"


def test_empirical_denoiser_limits():
    g = torch.Generator().manual_seed(6)
    points = torch.randn(12, 2, generator=g, dtype=torch.float64)
    query = torch.randn(20, 2, generator=g, dtype=torch.float64)
    nearest = points[torch.cdist(query, points).argmin(dim=1)]
    denoise = EmpiricalPosteriorDenoiser(points)
    for sigma in (1e-4, 1e-8, 0.0):  # σ → 0: the nearest point, no overflow or nan
        err = (denoise(query, torch.full((20,), sigma, dtype=torch.float64)) - nearest).abs().max().item()
        assert err <= 1e-12, f"σ={sigma}: {err:.3e} from the nearest point"
    # float32 with σ² underflowing to 0 (and d²/σ² overflowing): still the nearest point, no nan.
    got = denoise(query.float(), torch.full((20,), 1e-20))
    assert torch.equal(got, nearest.float())
    # σ → ∞: the weights flatten to 1/K, the prior mean.
    far = denoise(query, torch.full((20,), 1e8, dtype=torch.float64))
    assert (far - points.mean(dim=0)).abs().max().item() <= 1e-10


@pytest.mark.parametrize("make, error, match", [
    (lambda: get_strategy(None), TypeError, "strategy name must be a string, one of origin, cat, res, noise; got None"),
    (lambda: Noise(float("inf")), ValueError, "noise level must be a finite number >= 0; got inf"),
    (lambda: Noise(float("nan")), ValueError, "noise level must be a finite number >= 0; got nan"),
    (lambda: Noise(-0.1), ValueError, "noise level must be a finite number >= 0; got -0.1"),
    (lambda: LQStdLevel(float("nan")), ValueError, "LQStdLevel scale must be a finite number >= 0; got nan"),
    (lambda: EmpiricalPosteriorDenoiser(torch.zeros(3, 2), chunk=0), ValueError, "chunk must be an integer >= 1"),
    (lambda: EmpiricalPosteriorDenoiser(torch.full((3, 2), float("nan"))), ValueError, "points must be finite"),
    (lambda: EmpiricalPosteriorDenoiser(torch.zeros(3, 2))(torch.zeros(2, 2), torch.tensor([0.1, float("nan")])),
     ValueError, r"sigma must be finite and >= 0; got \[0.1.*, nan\]"),
], ids=["strategy-None", "noise-inf", "noise-nan", "noise-negative", "lqstd-nan", "chunk-0", "points-nan",
        "sigma-nan"])
def test_bad_values_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_empty_batch_hashes_to_empty_endpoints():
    """An empty batch is a batch: every strategy, LQStdLevel's Noise too, returns empty endpoints."""
    x = torch.zeros(0, 1, 4, 4)
    for strategy in (Origin(), Cat(), Res(), Noise(LQStdLevel(0.1))):
        x_hat, y_hat = strategy.encode(x, x, generator=torch.Generator().manual_seed(0))
        assert x_hat.shape[0] == y_hat.shape[0] == 0
