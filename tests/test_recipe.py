"""The recipe: one bridge from names, the same network, pairs and restoration as the pieces put together by hand."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from pi2sb_lab._checks import check_int, check_real, parameter_error
from pi2sb_lab.cli import flag_error
from pi2sb_lab.conditioning import Conditioning
from pi2sb_lab.families import DDBMVPBridge
from pi2sb_lab.hashing import Cat, get_strategy
from pi2sb_lab.nets import seeded
from pi2sb_lab.nets.mlp import MLP2D
from pi2sb_lab.nets.unet import UNet
from pi2sb_lab.parameterization import EpsParam, X0Param
from pi2sb_lab.pipeline import degrade_pair_fn, pool_pair_fn, restore
from pi2sb_lab.recipe import MLP, Recipe, make_bridge, make_recipe
from pi2sb_lab.schedule import SymmetricSchedule


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("strategy, conditioning", [("origin", "none"), ("cat", "lq+da"), ("res", "lq")])
def test_network_is_the_hand_built_unet_bit_for_bit(strategy, conditioning):
    recipe = make_recipe(strategy=strategy, conditioning=conditioning, net="tiny", channels=1)
    c = get_strategy(strategy).channels(1)
    cond = Conditioning(lq="lq" in conditioning, da="da" in conditioning)
    by_hand = seeded(lambda: UNet.from_config("tiny", in_channels=c, out_channels=c, **cond.unet_kwargs(1)), 7)
    net = recipe.network(7)
    assert isinstance(net, EpsParam) and net.schedule == SymmetricSchedule(0.1, 0.3)
    assert _same_weights(net.backbone, by_hand)
    assert (net.backbone.in_channels, net.backbone.cond_channels, net.backbone.degradation_dim) == \
        (c, int(cond.lq), 9 * cond.da)
    assert not _same_weights(recipe.backbone(8), by_hand), "another seed, other weights"


def test_names_resolve_to_the_library_objects():
    assert make_bridge() == SymmetricSchedule(0.1, 0.3) and make_bridge(beta_min=0.2).beta_min == 0.2
    assert make_bridge("ddbm-vp") == DDBMVPBridge()
    recipe = make_recipe(strategy="Noise-I2SB", conditioning="lq", noise_level=0.2)
    assert recipe.strategy.name == "noise" and recipe.conditioning == Conditioning(lq=True)
    assert float(recipe.strategy.noise_level(torch.zeros(2, 1, 4, 4))[0]) == pytest.approx(0.2)
    given = SymmetricSchedule(0.05, 0.2)
    assert make_recipe(bridge=given, strategy=Cat()).bridge is given  # objects are taken as they are
    with pytest.raises(ValueError, match="unknown pseudo-hashing strategy 'swap'"):
        make_recipe(strategy="swap")
    with pytest.raises(ValueError, match="unknown conditioning 'y'"):
        make_recipe(conditioning="y")
    with pytest.raises(ValueError, match="family must be one of"):
        make_recipe(bridge="i3sb")
    assert isinstance(make_recipe(parameterization="x0").network(0), X0Param)


def test_with_denoiser_swaps_noise_decode_only():
    def denoiser(x, sigma):
        return x * 0

    noise = make_recipe(strategy="noise")
    swapped = noise.with_denoiser(denoiser)
    assert swapped.strategy.denoiser is denoiser and noise.strategy.denoiser is None
    cat = make_recipe(strategy="cat")
    assert cat.with_denoiser(denoiser) is cat


def test_pairs_and_restore_are_the_pipeline_with_the_recipe_pieces():
    recipe = make_recipe(strategy="res", conditioning="lq", net="tiny")
    x, y = torch.rand(6, 1, 32, 32) * 2 - 1, torch.rand(6, 1, 32, 32) * 2 - 1
    mine = recipe.pool_pair_fn(x, y)(torch.tensor([0, 3]), torch.Generator().manual_seed(1))
    ref = pool_pair_fn(x, y, recipe.strategy, recipe.conditioning)(torch.tensor([0, 3]),
                                                                    torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(mine, ref))
    fn = lambda xb, g: (xb, -xb, None)  # noqa: E731
    mine = recipe.degrade_pair_fn(fn)(x[:2], torch.Generator().manual_seed(2))
    ref = degrade_pair_fn(fn, recipe.strategy, recipe.conditioning)(x[:2], torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(mine, ref))
    model = recipe.network(0).eval()
    out = recipe.restore(model, y[:3], nfe=3, seed=4)
    ref = restore(model, y[:3], recipe.bridge, recipe.strategy, nfe=3, conditioning=recipe.conditioning, seed=4)
    assert torch.equal(out.x, ref.x) and torch.equal(out.x_hat, ref.x_hat), "the same restoration, bit for bit"


def test_mlp_preset_for_points():
    recipe = make_recipe(strategy="cat", conditioning="lq", net=MLP, channels=2, hidden=16, depth=1, time_dim=8)
    net = recipe.backbone(3)
    assert isinstance(net, MLP2D) and (net.dim, net.cond_dim) == (4, 2)
    by_hand = seeded(lambda: MLP2D(4, hidden=16, depth=1, time_dim=8, cond_dim=2), 3)
    assert _same_weights(net, by_hand)
    raw = dataclasses.replace(recipe, net_options={**recipe.net_options, "cond_dim": 5})  # a raw pair set's width
    assert raw.backbone(3).cond_dim == 5
    assert isinstance(recipe, Recipe)


def test_errors_carry_the_parameter_name():
    with pytest.raises(ValueError) as info:
        check_real("lr", float("inf"), low=0, low_open=True)
    err = info.value
    assert type(err) is ValueError  # the type callers catch (and the bad-input page lists) is unchanged
    assert (err.parameter, err.problem, str(err)) == ("lr", "must be a finite number > 0; got inf",
                                                      "lr must be a finite number > 0; got inf")
    with pytest.raises(TypeError) as info:
        check_int("steps", 1.5, low=1)
    assert type(info.value) is TypeError and info.value.parameter == "steps"
    back = pickle.loads(pickle.dumps(err))  # errors of worker processes reach the parent whole
    assert type(back) is ValueError and (back.parameter, back.problem, str(back)) == (err.parameter, err.problem,
                                                                                      str(err))
    labelled = parameter_error(ValueError, "NFE", "must be >= 1; got 0", "parameter NFE")
    assert str(labelled) == "parameter NFE must be >= 1; got 0" and labelled.parameter == "NFE"
    assert flag_error(err, {"lr": "--lr"}) == "--lr must be a finite number > 0; got inf"
    assert flag_error(err, {}) == str(err) and flag_error(ValueError("plain"), {"lr": "--lr"}) == "plain"
    from pi2sb_lab.notebook import resolve_device

    with pytest.raises(ValueError) as info:
        resolve_device("tpu")
    assert str(info.value) == "parameter DEVICE must be 'auto', 'cpu' or 'cuda[:N]'; got 'tpu'"
    assert flag_error(info.value, {"DEVICE": "--device"}) == "--device must be 'auto', 'cpu' or 'cuda[:N]'; got 'tpu'"
