"""MLP2D: shapes, conditioning rules, and that it can fit a small regression target."""

from __future__ import annotations

import pytest
import torch

from pi2sb_lab.nets.mlp import MLP2D


def _inputs(n=8, dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g), torch.rand(n, generator=g)


def test_shapes_without_and_with_cond():
    torch.manual_seed(0)
    x, t = _inputs()
    assert MLP2D()(x, t).shape == (8, 2)
    assert MLP2D(out_dim=3)(x, t).shape == (8, 3)
    assert MLP2D(dim=4)(torch.randn(8, 4), t).shape == (8, 4)  # Cat endpoints: 2·2 channels
    assert MLP2D()(x, 0.5).shape == (8, 2)  # scalar t
    assert MLP2D()(x, t[:, None]).shape == (8, 2)  # (N, 1) t
    y = torch.randn(8, 2)
    assert MLP2D(cond_dim=2)(x, t, y).shape == (8, 2)
    assert MLP2D(cond_dim=2)(x, t, {"image": y}).shape == (8, 2)
    net = MLP2D(cond_dim=2, degradation_dim=5)
    assert net(x, t, {"image": y, "degradation": torch.randn(8, 5)}).shape == (8, 2)
    assert MLP2D(degradation_dim=5)(x, t, {"degradation": torch.randn(8, 5)}).shape == (8, 2)


def test_output_depends_on_time_and_condition():
    torch.manual_seed(1)
    net = MLP2D(cond_dim=2, degradation_dim=3)
    x, _ = _inputs()
    y, d = torch.randn(8, 2), torch.randn(8, 3)
    base = net(x, 0.1, {"image": y, "degradation": d})
    for other in (
        net(x, 0.9, {"image": y, "degradation": d}),
        net(x, 0.1, {"image": y + 1, "degradation": d}),
        net(x, 0.1, {"image": y, "degradation": d + 1}),
    ):
        gap = (base - other).abs().max().item()
        assert gap > 1e-4, f"output moved only {gap:.2e}: an input is not wired in"


@pytest.mark.parametrize(
    ("kwargs", "cond", "match"),
    [
        ({}, torch.zeros(8, 2), "built without an image condition"),
        ({}, {"degradation": torch.zeros(8, 5)}, "degradation_dim=0"),
        ({"cond_dim": 2}, None, "needs an image condition"),
        ({"cond_dim": 2}, torch.zeros(8, 3), r"shape \(8, 2\)"),
        ({"cond_dim": 2}, torch.zeros(7, 2), r"shape \(8, 2\)"),
        ({"cond_dim": 2, "degradation_dim": 5}, {"image": torch.zeros(8, 2)}, "degradation-parameter vector"),
        ({"cond_dim": 2, "degradation_dim": 5}, {"image": torch.zeros(8, 2), "degradation": torch.zeros(8, 4)}, r"\(8, 5\)"),
        ({"cond_dim": 2}, {"img": torch.zeros(8, 2)}, "unknown cond keys"),
        ({"cond_dim": 2}, {"image": torch.zeros(8, 2), "lq": torch.zeros(8, 2)}, "unknown cond keys"),
        ({"cond_dim": 2}, [torch.zeros(8, 2)], "None, a Tensor or a dict"),
    ],
)
def test_bad_cond_is_rejected(kwargs, cond, match):
    x, t = _inputs()
    with pytest.raises(ValueError, match=match):
        MLP2D(**kwargs)(x, t, cond)


def test_bad_x_or_t_is_rejected():
    x, t = _inputs()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        MLP2D()(torch.zeros(8, 3), t)
    with pytest.raises(ValueError, match="t must be"):
        MLP2D()(x, t[:5])


def test_overfits_a_small_regression_target():
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(64, 2, generator=g), torch.rand(64, generator=g)
    y = torch.randn(64, 2, generator=g)
    # A smooth target that needs x, t and the condition y.
    target = torch.stack([torch.sin(2 * x[:, 0]) + t, x[:, 1] * torch.cos(3 * t) - 0.5 * y[:, 0]], dim=1)
    net = MLP2D(hidden=64, depth=2, time_dim=32, cond_dim=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = (net(x, t, y) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ratio = losses[0] / losses[-1]
    # Measured: 0.95 → 7.2e-5 (about 1.3e4×); 100× leaves room for other torch builds.
    assert ratio > 100, f"loss fell only {ratio:.1f}× ({losses[0]:.4f} → {losses[-1]:.2e})"
