"""Tests that can see the failures they guard: each check below once passed on a broken implementation.

Every case plants a deliberately broken implementation (a mutant: NaN, a zero or identity map, a sign
flip, a step that is right only where it ends) with ``monkeypatch`` and runs the *original* test
function against it; the test must now fail. The earlier versions of these tests passed on these
mutants (``max(worst, err)`` drops NaN; σ² compared with itself; a sampler's last step lands on X0
whatever came before; the x0 parameterization returned before its restoration check).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import test_bridge
import test_counterexample
import test_degrade
import test_objective
import test_sampler
import test_schedule
from conftest import check_exact
from pi2sb_lab import _degrade_ops, bridge, parameterization, sampler
from pi2sb_lab.schedule import SymmetricSchedule


def must_fail(test, *args, **kwargs) -> str:
    """Run an original test function; it must fail (an AssertionError). Returns its message."""
    with pytest.raises(AssertionError) as info:
        test(*args, **kwargs)
    return str(info.value)


def exact(err, tol=1e-10, what=""):
    """The ``exact`` fixture without the recording (the mutant runs are not real measurements)."""
    check_exact(err, tol, what)


def nan_at_one_entry(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[x.numel() // 2] = float("nan")
    return x


def test_exact_itself_fails_on_nan():
    assert "1 of 3 errors are NaN/inf" in must_fail(check_exact, [0.0, float("nan"), 1e-12])
    assert "largest error" in must_fail(check_exact, [0.0, 1.0])


def test_ddpm_recursion_check_rejects_a_nan_step(monkeypatch):
    real = bridge._step_posterior

    def nan_std(*args):
        mean, std = real(*args)
        return bridge.StepPosterior(mean, nan_at_one_entry(std) if std.numel() > 1 else std * float("nan"))

    monkeypatch.setattr(bridge, "_step_posterior", nan_std)
    message = must_fail(test_bridge.test_ddpm_recursion_keeps_the_bridge_marginals, SymmetricSchedule(), "uniform",
                        3, exact)
    assert "NaN" in message


def test_ot_velocity_check_rejects_a_nan_velocity(monkeypatch):
    monkeypatch.setattr(test_bridge, "ot_velocity", lambda *a: torch.full((1, 2), float("nan"), dtype=torch.float64))
    assert "NaN" in must_fail(test_bridge.test_ot_velocity_is_the_time_derivative_of_the_posterior_mean,
                              SymmetricSchedule(), exact)


def test_karras_coefficient_check_rejects_a_nan_coefficient(monkeypatch):
    real = parameterization.KarrasParam._coefficients

    def nan_c_out(self, t):
        c_in, c_skip, c_out = real(self, t)
        return c_in, c_skip, c_out * float("nan") if float(t) > 0.5 else c_out

    monkeypatch.setattr(parameterization.KarrasParam, "_coefficients", nan_c_out)
    assert "NaN" in must_fail(test_objective.test_karras_coefficients_against_covariance_algebra, exact)


@pytest.mark.parametrize("mutant", ["sign flip", "zero map", "identity"])
def test_x0_parameterization_restoration_is_checked(monkeypatch, mutant):
    """The x0 case returned before its restoration check: a sampler giving −X0, zeros or the degraded
    input back passed it."""
    if mutant == "sign flip":
        monkeypatch.setattr(parameterization.X0Param, "_pred_x0",
                            lambda self, x_t, t, cond=None: -self._net(x_t, t, cond))
    else:
        def fake_sample(model, x1, *args, **kwargs):
            x0 = torch.zeros_like(x1) if mutant == "zero map" else x1.clone()
            return sampler.SampleResult(x0=x0, trajectory=torch.stack([x1, x0]), pred_x0=x0[None], times=torch.ones(2))

        monkeypatch.setattr(test_objective, "sample", fake_sample)
    assert "x0: median restoration error" in must_fail(test_objective.test_loss_trains_a_small_mlp_on_a_2d_toy, "x0")


def test_fused_blur_check_rejects_a_nan_pixel(monkeypatch):
    real = _degrade_ops.blur_resize_isotropic
    monkeypatch.setattr(_degrade_ops, "blur_resize_isotropic", lambda *a: nan_at_one_entry(real(*a)))
    assert "NaN" in must_fail(test_degrade.test_fused_iso_blur_resize_equals_fft_blur_then_resize, (16, 24), exact)


def test_grid_independence_check_rejects_another_schedule(monkeypatch):
    """The old check compared σ² with itself at bit-identical times: any schedule passed it, the 2t-slope
    one of an earlier version included."""
    def ramp_2t(self, t):
        a = self.beta_min**0.5
        return a + 2 * t * (self.beta_max**0.5 - a), a

    monkeypatch.setattr(SymmetricSchedule, "_ramp", ramp_2t)
    must_fail(test_schedule.test_schedule_shape_does_not_depend_on_the_grid)


def test_quadrature_check_rejects_a_nan_sigma_bar(monkeypatch):
    real = SymmetricSchedule._sigma_bar2
    monkeypatch.setattr(SymmetricSchedule, "_sigma_bar2", lambda self, t: nan_at_one_entry(real(self, t)))
    assert "NaN" in must_fail(test_schedule.test_symmetric_schedule_matches_quadrature, 0.1, 0.3, exact)


def off_until_the_end(schedule, x0, x_t, t, s):
    """A sampler step three standard deviations off everywhere but at s = 0, where std = 0."""
    mean, std = _real_step_posterior(schedule, x0, x_t, t, s)
    return bridge.StepPosterior(mean + 3 * std, std)


_real_step_posterior = sampler._step_posterior


@pytest.mark.parametrize("ot_ode", [False, True])
def test_oracle_sampler_check_sees_the_intermediate_states(monkeypatch, ot_ode):
    """A step that is right only where it ends (s = 0, where std = 0) and off everywhere before: the
    oracle's estimate is X0 at any state, so the endpoint alone could not tell."""
    monkeypatch.setattr(sampler, "_step_posterior", off_until_the_end)
    message = must_fail(test_sampler.test_oracle_sampler_returns_x0, 7, ot_ode, "quadratic", exact)
    assert ("intermediate states" in message) if ot_ode else ("standardized states" in message)


def test_oracle_sde_check_sees_too_much_noise(monkeypatch):
    real = sampler.randn_like
    monkeypatch.setattr(sampler, "randn_like", lambda x, g=None: 3 * real(x, g))
    assert "variance per step" in must_fail(test_sampler.test_oracle_sampler_returns_x0, 7, False, "uniform", exact)


MAPS = {"zero map": lambda s: torch.zeros_like(s), "constant map": lambda s: torch.full_like(s, 5.0),
        "identity": lambda s: s.clone()}


@pytest.mark.parametrize("mutant", list(MAPS))
def test_forward_flow_bound_rejects_trivial_maps(monkeypatch, mutant):
    """`flow.mse >= forced.mse` holds for every map; the check must also see where the flow lands."""
    monkeypatch.setattr(test_counterexample, "oracle_forward_map", lambda *a, **k: MAPS[mutant])
    gen = torch.Generator().manual_seed(1234)
    assert "outside their partners' hull" in must_fail(
        test_counterexample.test_forced_error_is_the_partner_spread_for_any_partners, 3, gen, exact)


@pytest.mark.parametrize("mutant", list(MAPS))
def test_shared_partner_floor_rejects_trivial_maps(monkeypatch, mutant):
    monkeypatch.setattr(test_counterexample, "oracle_restoring_map", lambda *a, **k: MAPS[mutant])
    gen = torch.Generator().manual_seed(1234)
    assert "restores a clean point" in must_fail(
        test_counterexample.test_clean_points_sharing_a_partner_leave_the_same_floor_for_every_strategy, gen, exact)


@pytest.mark.parametrize("mutant", list(MAPS))
def test_learned_forward_bound_rejects_trivial_maps(monkeypatch, mutant):
    monkeypatch.setattr(test_counterexample, "fit_bridge", lambda *a, **k: None)  # no training: the map is planted
    monkeypatch.setattr(test_counterexample, "sample_bridge",
                        lambda model, s: sampler.SampleResult(MAPS[mutant](s), s[None], s[None], torch.ones(1)))
    assert "learned forward flow ends" in must_fail(test_counterexample.test_learned_models_forward_stuck_restoring_fine)


# --------------------------------------------------------------------------- notebook checks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, params: dict, tmp_path, monkeypatch) -> dict:
    """Execute a notebook's code cells in this process (so that monkeypatched library code is what it
    imports), with ``params`` injected after its parameters cell, as papermill does. Returns its names."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    monkeypatch.chdir(NOTEBOOKS)
    namespace = {"__name__": "__main__"}
    params = {"INTERACTIVE": False, "OUTPUT_DIR": str(tmp_path / "out"), **params}
    try:
        for cell in jupytext.read(NOTEBOOKS / name).cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, name, "exec"), namespace)
                if "parameters" in cell.metadata.get("tags", []):
                    namespace.update(params)
    finally:
        plt.close("all")
    return namespace


def test_notebook_01_z_scores_reject_a_nan_reference(monkeypatch, tmp_path):
    """The z-scores were max(worst, z): an all-NaN posterior (the reference itself) passed, and the last
    step lands on X0 whatever it is."""
    real = bridge.posterior
    monkeypatch.setattr(bridge, "posterior", lambda sched, t: dataclasses.replace(
        real(sched, t), var=real(sched, t).var * float("nan")))
    with pytest.raises(AssertionError, match="NaN/inf z-scores"):
        run_notebook("01_dirac_pair_bridge.py", {"N_PATHS": 300, "NFE": 8}, tmp_path, monkeypatch)


@pytest.mark.parametrize("mutant", list(MAPS))
def test_notebook_02_restoring_floor_rejects_trivial_maps(monkeypatch, mutant, tmp_path):
    import pi2sb_lab.counterexample as counterexample

    real = counterexample.oracle_restoring_map
    # Planted only where clean points share partners (4 pairs); the one-x case (2 pairs) stays perfect.
    monkeypatch.setattr(counterexample, "oracle_restoring_map",
                        lambda x_hat, *a, **k: MAPS[mutant] if x_hat.shape[0] == 4 else real(x_hat, *a, **k))
    with pytest.raises(AssertionError, match="shared-partner restoring error .* is not twice the floor"):
        run_notebook("02_corollary_4_2.py", {"STEPS": 5, "NFE": 10}, tmp_path, monkeypatch)


@pytest.mark.parametrize("mutant", list(MAPS))
def test_notebook_02_learned_forward_bound_rejects_trivial_maps(monkeypatch, mutant, tmp_path):
    import pi2sb_lab.experiments.twod as twod

    monkeypatch.setattr(twod, "learned_map", lambda *a, **k: MAPS[mutant])  # no training: the map is planted
    with pytest.raises(AssertionError, match="learned forward flow ends"):
        run_notebook("02_corollary_4_2.py", {"STEPS": 5, "NFE": 10}, tmp_path, monkeypatch)


# Notebook 05 at the suite's settings (tests/notebooks/05_mnist_pseudo_hashing.json), one LQ-conditioned variant.
NB05 = {"STEPS": 20, "HELPER_STEPS": 60, "TRAIN_SIZE": 256, "N_EVAL": 16, "NFE": 5, "VARIANTS": ["b-lq"]}


def test_notebook_05_trajectory_check_sees_the_intermediate_steps(monkeypatch, tmp_path):
    """Its oracle-style checks were true by construction at the last step (std = 0 there); a sampler that
    is off by three standard deviations at every step before must now fail."""
    monkeypatch.setattr(sampler, "_step_posterior", off_until_the_end)
    with pytest.raises(AssertionError, match="is not I2SB's DDPM step"):
        run_notebook("05_mnist_pseudo_hashing.py", NB05, tmp_path, monkeypatch)


@pytest.mark.parametrize("mutant", ["zero map", "constant map"])
def test_notebook_05_quality_check_rejects_restorations_that_ignore_y(monkeypatch, mutant, tmp_path):
    """Its only quality assert (> 1 dB over the input) never ran at the suite's settings; the one that now
    runs at every setting (the restorations depend on y) must reject a restoration that ignores y.
    Planted only in the multi-digit evaluation, so the single-digit trajectory checks still pass."""
    from pi2sb_lab.experiments import mnist_eval

    real = mnist_eval.restore_variant

    def ignores_y(tv, y, *args, **kwargs):
        out = real(tv, y, *args, **kwargs)
        return out if y.shape[0] == 1 else dataclasses.replace(out, x=MAPS[mutant](out.x).clamp(-1, 1))

    monkeypatch.setattr(mnist_eval, "restore_variant", ignores_y)
    with pytest.raises(AssertionError, match="restorations are one image .* it ignores y"):
        run_notebook("05_mnist_pseudo_hashing.py", NB05, tmp_path, monkeypatch)


def test_mutants_are_undone():
    """monkeypatch restored everything: the originals pass again (a cheap one of each kind)."""
    test_sampler.test_oracle_sampler_returns_x0(7, True, "quadratic", exact)
    test_schedule.test_schedule_shape_does_not_depend_on_the_grid()
    assert dataclasses.is_dataclass(sampler.SampleResult)


def test_marginal_check_rejects_an_implicit_step_without_the_markov_term(monkeypatch):
    """K = √((1 − η²)c²_s)/c_t, the η-step without η²K²_Markov c²_t: right at η = 0 and wrong in between."""
    import test_families
    from pi2sb_lab import families

    def broken(family, t, s, eta):
        ct, cs, m = family._coeffs(t), family._coeffs(s), family._markov(t, s)
        pinned = ct.var == 0
        k = torch.where(pinned, 0 * ct.var, ((1 - eta**2) * cs.var).sqrt() / torch.where(pinned, 1 + 0 * ct.var,
                                                                                           ct.var).sqrt())
        return cs.mu_x0 - k * ct.mu_x0, cs.mu_x1 - k * ct.mu_x1, k, eta * m.var.sqrt()

    monkeypatch.setattr(sampler, "implicit_step", broken)
    sampler.clear_step_tables()
    try:
        must_fail(test_families.test_every_eta_keeps_every_marginal, families.DDBMVPBridge(), 0.3, exact)
    finally:
        sampler.clear_step_tables()


def test_quadrature_check_rejects_a_wrong_goub_variance(monkeypatch):
    """GOUB's ν̄ with e^{θ(1−t)} for e^{2θ(1−t)}: a plausible slip the endpoints (ν̄_1 = 0) do not show."""
    import test_families
    from pi2sb_lab import families

    def nu_bar(self, t):
        return self.lam**2 * torch.exp(2.0 * self.theta * t) * torch.expm1(self.theta * (1.0 - t))

    monkeypatch.setattr(families.GOUBBridge, "_nu_bar", nu_bar)
    must_fail(test_families.test_coefficients_are_the_gaussian_conditioning_of_the_sde, families.GOUBBridge(), exact)
