"""SDEdit, ODEdit (ODEdit Alg. 1), Langevin, the DDIM denoiser of Noise-I2SB, and the VP / Palette objectives."""

import math

import pytest
import torch

from pi2sb_lab.diffusion import ODEDIT_PAPER, DDIMDenoiser, PaletteObjective, VPObjective, VPrediction, ddim, ddim_invert, ddpm, default_langevin_at, langevin, odedit, palette_cond, predict, prior_noise, sdedit, vp_loss
from pi2sb_lab.hashing import Denoiser, Noise
from pi2sb_lab.nets.mlp import MLP2D
from pi2sb_lab.train import training_loop

from test_diffusion import SCHED, dirac_eps, gaussian_eps


class Counting:
    """Wraps a network and counts its calls."""

    def __init__(self, net):
        self.net, self.calls = net, 0

    def __call__(self, x, t, cond=None):
        self.calls += 1
        return self.net(x, t, cond)


# --------------------------------------------------------------------------- SDEdit


def test_sdedit_at_t0_zero_is_the_identity():
    y = torch.randn(3, 1, 4, 4)
    net = Counting(lambda x, t, c=None: torch.ones_like(x))
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = sdedit(net, y, SCHED, t0=0.0, nfe=10, generator=g)
    assert torch.equal(out.x0, y) and net.calls == 0 and out.nfe == 0
    assert torch.equal(g.get_state(), state), "t0 = 0 must draw nothing"
    assert out.trajectory.shape == (1, *y.shape) and out.pred_x0.shape == (0, *y.shape)


@pytest.mark.parametrize("t0, eta", [(0.3, 1.0), (1.0, 1.0), (0.6, 0.0)])
def test_sdedit_with_a_dirac_oracle_lands_on_the_data(t0, eta, exact):
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = x0 + 0.5  # any observation: the oracle pulls it back to x0
    out = sdedit(dirac_eps(x0), y, SCHED, t0=t0, nfe=5, eta=eta, generator=torch.Generator().manual_seed(2))
    exact((out.x0 - x0).abs().max().item())
    assert out.nfe == 5 and abs(float(out.times[0]) - t0) < 1e-15


def test_sdedit_noises_the_observation_to_q_x_t0_given_y():
    """Monte Carlo: SDEdit's start is N(α_{t0} y, σ_{t0}²) (5 standard errors, 20,000 draws)."""
    n, t0 = 20_000, 0.35
    y = torch.full((n, 1), 0.7, dtype=torch.float64)
    out = sdedit(dirac_eps(torch.zeros_like(y)), y, SCHED, t0=t0, nfe=3, generator=torch.Generator().manual_seed(3))
    start = out.trajectory[0, :, 0]
    m, v = float(SCHED.alpha(t0)) * 0.7, float(SCHED.sigma2(t0))
    z_mean = abs(start.mean().item() - m) / math.sqrt(v / n)
    z_var = abs(start.var().item() - v) / (v * math.sqrt(2 / (n - 1)))
    assert z_mean < 5 and z_var < 5, f"mean z {z_mean:.2f}, var z {z_var:.2f}"


# --------------------------------------------------------------------------- Langevin and ODEdit


def test_one_langevin_update_is_odedit_alg1_line(exact):
    mu, s = torch.tensor(0.2, dtype=torch.float64), 0.5
    net = gaussian_eps(mu, s)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t, step, temp = torch.tensor(0.3, dtype=torch.float64), 0.01, 1 / 3
    out = langevin(net, x, SCHED, t, steps=1, step=step, temperature=temp, generator=torch.Generator().manual_seed(5))
    eta = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = x - step * net(x, t.expand(5)) / SCHED.sigma(t) + math.sqrt(2 * step * temp) * eta
    exact((out - ref).abs().max().item())


@pytest.mark.parametrize("temperature", [1.0, 1 / 3])
def test_langevin_with_an_exact_score_has_the_closed_form_stationary_law(temperature):
    """With the Gaussian marginal N(m, v) at time t, unadjusted Langevin with step h and temperature T is
    stationary at N(m, T v/(1 − h/(2v))); 20,000 chains after 300 steps (contraction 0.9³⁰⁰), 5 std errors."""
    mu, s, n = 0.4, 0.5, 20_000
    t = torch.tensor(0.2, dtype=torch.float64)
    m = float(SCHED.alpha(t)) * mu
    v = float(SCHED.alpha(t)) ** 2 * s * s + float(SCHED.sigma2(t))
    h = 0.1 * v
    x = torch.full((n, 1), 3.0, dtype=torch.float64)  # far from the mode: the chain must travel
    out = langevin(gaussian_eps(torch.tensor(mu, dtype=torch.float64), s), x, SCHED, t, steps=300, step=h,
                   temperature=temperature, generator=torch.Generator().manual_seed(6))[:, 0]
    var_ref = temperature * v / (1 - h / (2 * v))
    z_mean = abs(out.mean().item() - m) / math.sqrt(var_ref / n)
    z_var = abs(out.var().item() - var_ref) / (var_ref * math.sqrt(2 / (n - 1)))
    assert z_mean < 5 and z_var < 5, f"T={temperature}: mean z {z_mean:.2f}, var z {z_var:.2f}"


def test_odedit_without_langevin_is_inversion_then_ddim():
    mu, s = torch.tensor(0.1, dtype=torch.float64), 0.4
    net = Counting(gaussian_eps(mu, s))
    y = torch.randn(6, 1, 3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for kwargs in (dict(langevin_steps=0), dict(langevin_steps=50, step_size=0.0)):
        for grid, t_end in (("uniform", 1.0), ("quadratic", 0.5)):
            out = odedit(net, y, SCHED, nfe=12, grid=grid, t_end=t_end, generator=torch.Generator().manual_seed(8),
                         **kwargs)
            ref = ddim(net, ddim_invert(net, y, SCHED, nfe=12, grid=grid, t_end=t_end).x0, SCHED, nfe=12, grid=grid,
                       t_start=t_end)
            assert torch.equal(out.x0, ref.x0), f"{kwargs}, {grid}: ODEdit with no Langevin move is not inversion + DDIM"
            assert torch.equal(out.trajectory[0], ref.trajectory[0])


def test_odedit_runs_langevin_at_the_chosen_latents_with_alpha_t_scaled_by_sigma():
    """2N + K·|L| network calls, and the Langevin steps use α_t = ε σ_t/σ_1 (checked against langevin())."""
    mu, s = torch.tensor(0.0, dtype=torch.float64), 0.5
    net = Counting(gaussian_eps(mu, s))
    y = torch.randn(4, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out = odedit(net, y, SCHED, nfe=8, langevin_steps=3, step_size=1e-3, temperature=0.5, langevin_at=(8,),
                 grid="uniform", generator=torch.Generator().manual_seed(10))
    assert net.calls == 2 * 8 + 3 and out.nfe == 2 * 8 + 3
    latent = ddim_invert(net, y, SCHED, nfe=8, grid="uniform").x0
    alpha = 1e-3 * float(SCHED.sigma(1.0) / SCHED.sigma(1 / 8))
    moved = langevin(net, latent, SCHED, 1.0, steps=3, step=alpha, temperature=0.5,
                     generator=torch.Generator().manual_seed(10))
    ref = ddim(net, moved, SCHED, nfe=8, grid="uniform").x0
    assert (out.x0 - ref).abs().max().item() < 1e-12
    assert default_langevin_at(100) == (100, 75, 50, 25) and default_langevin_at(2) == (2, 1)
    assert ODEDIT_PAPER["nfe"] == 100 and ODEDIT_PAPER["step_size"] == 1e-6


def test_odedit_langevin_pulls_an_outlier_towards_the_data():
    """Learned-free sanity: with the exact score, more Langevin updates (T = 0, pure score ascent) move an
    off-distribution observation closer to the data mean than inversion + DDIM alone."""
    mu, s = torch.tensor(0.0, dtype=torch.float64), 0.3
    net = gaussian_eps(mu, s)
    y = torch.full((1, 1), 2.0, dtype=torch.float64)
    dist = [odedit(net, y, SCHED, nfe=20, langevin_steps=k, step_size=5e-3, temperature=0.0).x0.abs().item()
            for k in (0, 10, 100)]
    assert dist[0] > dist[1] > dist[2], f"|x| after K = 0, 10, 100 Langevin updates: {dist}"


# --------------------------------------------------------------------------- DDIM denoiser (Noise-I2SB decode)


def test_ddim_denoiser_at_sigma_zero_returns_its_input():
    net = Counting(lambda x, t, c=None: torch.ones_like(x))
    den = DDIMDenoiser(net, SCHED, nfe=5)
    x = torch.randn(3, 1, 4, 4)
    assert torch.equal(den(x, torch.zeros(3)), x) and torch.equal(den(x, 0.0), x) and net.calls == 0
    assert isinstance(den, Denoiser)


@pytest.mark.parametrize("nfe", [1, 10])
def test_ddim_denoiser_with_a_dirac_prior_recovers_the_clean_sample(nfe, exact):
    x = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    sigma = torch.tensor([0.0, 0.05, 0.5, 3.0], dtype=torch.float64)
    noisy = x + sigma.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=torch.Generator().manual_seed(12),
                                                         dtype=torch.float64)
    den = DDIMDenoiser(dirac_eps(x[1:].repeat(1, 1, 1, 1)), SCHED, nfe=nfe)
    # the oracle only knows rows 1..3; row 0 has σ = 0 and must come back untouched, without a call
    out = torch.cat([den(noisy[:1], sigma[:1]), den(noisy[1:], sigma[1:])])
    exact((out[1:] - x[1:]).abs().max().item())
    assert torch.equal(out[0], noisy[0])


def test_one_step_ddim_denoiser_is_the_gaussian_posterior_mean(exact):
    """nfe = 1 from t* is Tweedie's x̂0 at the level λ: for data N(μ, s²), E[x | x + λε] = μ + s²/(s² + λ²)(x̃ − μ).
    This checks that the chain is entered at the right time t* (σ_{t*}/α_{t*} = λ) and scale (α_{t*} x̃)."""
    mu, s = torch.tensor([0.2, -0.1], dtype=torch.float64), 0.6
    den = DDIMDenoiser(gaussian_eps(mu, s), SCHED, nfe=1)
    g = torch.Generator().manual_seed(13)
    noisy = torch.randn(5, 2, generator=g, dtype=torch.float64)
    lam = torch.tensor([0.01, 0.05, 0.3, 1.0, 10.0], dtype=torch.float64)
    ref = mu + (s * s / (s * s + lam[:, None] ** 2)) * (noisy - mu)
    exact((den(noisy, lam) - ref).abs().max().item())


def test_ddim_denoiser_decodes_noise_i2sb(exact):
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    noise = Noise(level=0.1, denoiser=DDIMDenoiser(dirac_eps(x), SCHED, nfe=4))
    x_hat, y_hat = noise.encode(x, x + 0.3, generator=torch.Generator().manual_seed(15))
    exact((noise.decode(x_hat, x + 0.3) - x).abs().max().item())


# --------------------------------------------------------------------------- objectives


def test_vp_loss_is_ddpm_simple_loss(exact):
    x0 = torch.randn(6, 2, 3, 3, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    t = torch.linspace(0.05, 1.0, 6, dtype=torch.float64)
    net = lambda x, tt, c=None: 0.5 * x  # noqa: E731
    loss = vp_loss(net, x0, SCHED, t=t, generator=torch.Generator().manual_seed(17), reduction="none")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    x_t = SCHED.alpha(t).reshape(-1, 1, 1, 1) * x0 + SCHED.sigma(t).reshape(-1, 1, 1, 1) * eps
    ref = (0.5 * x_t - eps).square().flatten(1).mean(1)
    exact((loss - ref).abs().max().item())


def test_v_prediction_reads_as_epsilon_and_its_loss(exact):
    """A backbone that outputs the true v = α ε − σ x0 is read by VPrediction as the true ε (so x̂0 = x0), and the
    v-loss of VPObjective(prediction="v") is ‖v̂ − v‖² recomputed by hand."""
    g = torch.Generator().manual_seed(21)
    x0, eps = torch.randn(5, 1, 2, 2, generator=g, dtype=torch.float64), torch.randn(5, 1, 2, 2, generator=g,
                                                                                       dtype=torch.float64)
    t = torch.linspace(0.02, 1.0, 5, dtype=torch.float64)
    a, s = SCHED.alpha(t).reshape(-1, 1, 1, 1), SCHED.sigma(t).reshape(-1, 1, 1, 1)
    x_t, v = a * x0 + s * eps, a * eps - s * x0
    wrapped = VPObjective(SCHED, prediction="v").prepare(lambda x, tt, c=None: v)
    assert isinstance(wrapped, VPrediction)
    eps_hat, x0_hat = predict(wrapped, SCHED, x_t, t)
    exact((eps_hat - eps).abs().max().item())
    exact((x0_hat - x0).abs().max().item())
    loss = vp_loss(VPrediction(lambda x, tt, c=None: 0.5 * x, SCHED), x0, SCHED, t=t, prediction="v",
                   generator=torch.Generator().manual_seed(22), reduction="none")
    e = torch.randn(x0.shape, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    ref = (0.5 * (a * x0 + s * e) - (a * e - s * x0)).square().flatten(1).mean(1)
    exact((loss - ref).abs().max().item(), what="v loss")
    with pytest.raises(ValueError, match=r"prediction must be one of \['eps', 'v'\]; got 'x0'"):
        VPObjective(SCHED, prediction="x0")


def test_palette_objective_conditions_on_the_degraded_endpoint():
    seen = {}

    def net(x, t, cond=None):
        seen["cond"] = cond
        return torch.zeros_like(x)

    x0, x1 = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    g, gt = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    loss = PaletteObjective().loss(net, x0, x1, None, generator=g, time_generator=gt)
    assert torch.equal(seen["cond"], x1) and loss.item() > 0
    extra = torch.randn(4, 2, 2, 2)
    assert torch.equal(palette_cond(x1, extra), torch.cat([x1, extra], 1))
    both = palette_cond(x1, {"image": extra, "degradation": torch.ones(4, 9)})
    assert torch.equal(both["image"], torch.cat([x1, extra], 1)) and both["degradation"].shape == (4, 9)
    assert PaletteObjective().describe()["kind"] == "palette" and VPObjective().describe()["kind"] == "vp-diffusion"


def test_training_loop_learns_a_gaussian_prior():
    """Learned: 400 steps of VPObjective through train.training_loop on N((1, −0.5), 0.3²) points; DDPM samples
    then match the data's mean and std. Measured over 5 sampling seeds: mean error ≤ 0.011, std 0.26–0.45
    (bounds 0.1 and [0.15, 0.7]: a check that the loop trains the prior, not of its quality); loss 0.35 → 0.13.

    (DDIM from the same network is far worse, std ≈ 6: its ε error of ≈ 0.03 at high noise is integrated
    against d(σ/α) up to σ_1/α_1 ≈ 152 with no noise to correct it; image samplers clip x̂0 for this reason.)"""
    torch.manual_seed(0)
    data = torch.tensor([1.0, -0.5]) + 0.3 * torch.randn(4096, 2, generator=torch.Generator().manual_seed(18))
    result = training_loop(model=MLP2D(2, hidden=64, depth=2), dataset=data, pair_fn=lambda x, g: (x,),
                           objective=VPObjective(SCHED), total_steps=400, batch_size=128, lr=3e-3, ema_decay=0.9,
                           seed=0, progress=False)
    head, tail = sum(result.losses[:20]) / 20, sum(result.losses[-20:]) / 20
    assert tail < 0.5 * head, f"loss {head:.3f} → {tail:.3f}"
    samples = ddpm(result.ema, prior_noise((2000, 2), generator=torch.Generator().manual_seed(19)), SCHED, nfe=50,
                   generator=torch.Generator().manual_seed(20)).x0
    mean_err = (samples.mean(0) - torch.tensor([1.0, -0.5])).abs().max().item()
    std = samples.std(0)
    assert math.isfinite(mean_err) and mean_err < 0.1, f"sample mean off by {mean_err:.3f}"
    assert ((std > 0.15) & (std < 0.7)).all(), f"sample std {std.tolist()} vs 0.3"
    assert result.ema is not result.model


# --------------------------------------------------------------------------- bad input


def test_editing_bad_input():
    y = torch.zeros(2, 3)
    net = lambda x, t, c=None: x  # noqa: E731
    with pytest.raises(ValueError, match=r"t0 must be a number in \[0, 1\] \(0 keeps y, 1 forgets it\); got 1.5"):
        sdedit(net, y, SCHED, t0=1.5, nfe=3)
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 1000000\].*got 0"):
        sdedit(net, y, SCHED, t0=0.5, nfe=0)
    with pytest.raises(ValueError, match=r"langevin_at must hold grid indices in \[1, nfe=4\]"):
        odedit(net, y, SCHED, nfe=4, langevin_at=(0, 2))
    with pytest.raises(ValueError, match="langevin_steps must be an int >= 0"):
        odedit(net, y, SCHED, nfe=4, langevin_steps=-1)
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        odedit(net, y, SCHED, nfe=4, temperature=-1.0)
    with pytest.raises(ValueError, match="step_size must be a number >= 0"):
        odedit(net, y, SCHED, nfe=4, step_size=-1e-6)
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
        langevin(net, y, SCHED, 0.0, steps=2, step=0.1)
    den = DDIMDenoiser(net, SCHED)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        den(y, torch.tensor([0.1, -0.1]))
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \(2,\)"):
        den(y, torch.ones(3))
    with pytest.raises(ValueError, match=r"noise ratio σ/α must lie in \[0, 152.2\]"):
        den(y, 500.0)
    with pytest.raises(ValueError, match="nfe must be an int >= 1"):
        DDIMDenoiser(net, SCHED, nfe=0)
    with pytest.raises(TypeError, match="schedule must be a diffusion.VPSchedule"):
        from pi2sb_lab.schedule import SymmetricSchedule
        VPObjective(SymmetricSchedule())
    with pytest.raises(ValueError, match=r"t must have shape \(2,\) with values in \[0, 1\]"):
        vp_loss(net, y, SCHED, t=torch.tensor([0.5, 2.0]))
