"""The configurable U-Net: shapes, the cond convention, time conditioning, a tiny overfit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pi2sb_lab.nets.unet import CONFIGS, UNet





B = 2
S = 16  # spatial size of most test inputs: the U-Net takes any size divisible by 2**(levels-1)


def _perturb_output(model: UNet, seed: int = 0) -> UNet:
    """Give the zero-initialised layers random values so that every input path shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize(
    ("overrides", "cond_kind", "out_ch"),
    [
        (dict(), None, 1),
        (dict(in_channels=2, out_channels=2), None, 2),  # Cat hashing doubles the channels
        (dict(in_channels=2, out_channels=1), None, 1),
        (dict(cond_channels=1), "tensor", 1),
        (dict(cond_channels=1, degradation_dim=5), "dict", 1),
        (dict(degradation_dim=4), "dict-degradation-only", 1),
        (dict(channel_mult=(1, 2), attention_resolutions=(32, 16), num_res_blocks=2), None, 1),
    ],
)
def test_output_shape(overrides, cond_kind, out_ch):
    torch.manual_seed(0)
    model = UNet.from_config("tiny", **overrides)
    x = torch.randn(B, model.in_channels, 32, 32)
    cond = None
    if cond_kind == "tensor":
        cond = torch.randn(B, model.cond_channels, 32, 32)
    elif cond_kind == "dict":
        cond = {"image": torch.randn(B, model.cond_channels, 32, 32), "degradation": torch.rand(B, model.degradation_dim)}
    elif cond_kind == "dict-degradation-only":
        cond = {"degradation": torch.rand(B, model.degradation_dim)}
    with torch.no_grad():
        out = model(x, torch.rand(B), cond)
        assert out.shape == (B, out_ch, 32, 32)
        assert torch.equal(out, torch.zeros_like(out)), "zero-initialised output conv: an untrained model outputs 0"
        assert model(x[:, :, :S, :S], 0.5, None if cond is None else _crop(cond)).shape == (B, out_ch, S, S)


def _crop(cond):
    if isinstance(cond, torch.Tensor):
        return cond[:, :, :S, :S]
    return {k: (v[:, :, :S, :S] if k == "image" else v) for k, v in cond.items()}


@torch.no_grad()
def test_inputs_and_conditions_change_the_output():
    torch.manual_seed(0)
    model = _perturb_output(UNet.from_config("tiny", cond_channels=1, degradation_dim=3)).eval()
    x, img, deg = torch.randn(B, 1, S, S), torch.randn(B, 1, S, S), torch.rand(B, 3)
    t = torch.full((B,), 0.2)
    base = model(x, t, {"image": img, "degradation": deg})
    variants = {
        "t": model(x, torch.full((B,), 0.7), {"image": img, "degradation": deg}),
        "x_t": model(x + 0.5, t, {"image": img, "degradation": deg}),
        "cond image": model(x, t, {"image": -img, "degradation": deg}),
        "degradation": model(x, t, {"image": img, "degradation": deg + 1.0}),
    }
    for name, out in variants.items():
        change = (out - base).abs().mean().item()
        assert change > 1e-3, f"changing {name} moved the output by only {change:.2e}"
    # and a batch entry depends only on its own inputs
    again = model(x[:1], t[:1], {"image": img[:1], "degradation": deg[:1]})
    assert torch.allclose(again, base[:1], atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "cond", "match"),
    [
        (dict(), torch.zeros(B, 1, S, S), "built without an image condition"),
        (dict(cond_channels=1), None, r"needs an image condition of shape \(2, 1, 16, 16\)"),
        (dict(cond_channels=1), torch.zeros(B, 2, S, S), r"image condition must have shape \(2, 1, 16, 16\)"),
        (dict(cond_channels=1), {"img": torch.zeros(B, 1, S, S)}, "unknown cond keys"),
        (dict(degradation_dim=4), None, r"needs cond=\{'degradation'"),
        (dict(degradation_dim=4), {"degradation": torch.zeros(B, 3)}, r"must have shape \(2, 4\)"),
        (dict(), {"degradation": torch.zeros(B, 4)}, "degradation_dim=0"),
        (dict(), [torch.zeros(B, 1, S, S)], "cond must be None, a Tensor or a dict"),
    ],
)
def test_bad_cond_raises(overrides, cond, match):
    model = UNet.from_config("tiny", **overrides)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(B, 1, S, S), torch.rand(B), cond)


def test_bad_x_t_and_t_raise():
    model = UNet.from_config("tiny")
    with pytest.raises(ValueError, match=r"x_t must be \(B, 1, H, W\)"):
        model(torch.zeros(B, 2, S, S), torch.rand(B))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(B, 1, 30, 30), torch.rand(B))
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        model(torch.zeros(B, 1, S, S), torch.rand(B + 1))


def test_from_config_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"valid names: \[.*'adm512'.*'tiny'.*\]"):
        UNet.from_config("huge")


def test_config_round_trips():
    model = UNet.from_config("tiny", in_channels=2, cond_channels=1)
    rebuilt = UNet(**model.config)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]
    rebuilt.load_state_dict(model.state_dict())


def test_tiny_size_is_in_the_toy_budget():
    n = UNet.from_config("tiny").num_parameters()
    assert 300_000 <= n <= 1_000_000, f"tiny UNet has {n} parameters"


def test_adm512_places_attention_at_32_16_8():
    with torch.device("meta"):
        model = UNet.from_config("adm512")
    assert CONFIGS["adm512"]["attention_resolutions"] == (32, 16, 8)
    n = model.num_parameters()
    assert 50e6 < n < 300e6, f"adm512 has {n / 1e6:.1f}M parameters"
    # 2 attention layers per down level × 3 levels + 3 per up level × 3 + 1 in the middle
    n_attn = sum(type(m).__name__ == "SelfAttention" for m in model.modules())
    assert n_attn == 2 * 3 + 3 * 3 + 1


def test_adm512_shape_runs_at_small_width():
    model = UNet.from_config("adm512", model_channels=16, image_size=64, num_res_blocks=1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64), torch.rand(1)).shape == (1, 3, 64, 64)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = _perturb_output(UNet.from_config("tiny", channel_mult=(1, 2)))
    ckpt = UNet.from_config("tiny", channel_mult=(1, 2), use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x, t = torch.randn(2, 1, S, S), torch.rand(2)
    for m in (plain, ckpt):
        m(x, t).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_tiny_unet_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = UNet.from_config("tiny")
    # 4 images of 16x16 keep it cheap on a shared CPU; the network is the full tiny config
    x = torch.randn(4, 1, S, S)
    t = torch.rand(4)
    # a smooth, time-dependent target: blurred input scaled by (1 - t)
    target = F.avg_pool2d(x, 3, stride=1, padding=1) * (1 - t)[:, None, None, None]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        loss = F.mse_loss(model(x, t), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = losses[0], min(losses[-5:])
    assert last < first / 100, f"MSE went from {first:.4f} to {last:.4f} (factor {first / last:.1f}) in 100 steps"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = UNet.from_config("tiny", in_channels=2, cond_channels=1, degradation_dim=2).cuda()
    x = torch.randn(2, 2, 32, 32, device="cuda")
    cond = {"image": torch.randn(2, 1, 32, 32, device="cuda"), "degradation": torch.rand(2, 2, device="cuda")}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, torch.rand(2, device="cuda"), cond)
    assert out.shape == (2, 2, 32, 32) and out.device.type == "cuda"
