"""Tests of pi2sb_lab.walk (the one loop of every sampler) and pi2sb_lab.batch (per-sample helpers)."""

from __future__ import annotations

import pytest
import torch

from pi2sb_lab import bridge, diffusion, sampler
from pi2sb_lab.batch import expand_like, randn_like
from pi2sb_lab.walk import SampleResult, StepPosterior, walk


def _counting_walk(nfe: int, stride: int, draws: list[bool]):
    """A walk whose state is a counter: each step adds 1 (its mean) and, where drawn, the noise (100)."""
    seen, noise_calls = [], []
    pairs = [(torch.tensor(float(n)), torch.tensor(float(n - 1))) for n in range(nfe, 0, -1)]

    def predict(x, t):
        return -x, "extra"

    def step(n, t, s, x, pred_x0, extra):
        assert extra == "extra" and torch.equal(pred_x0, -x)
        return StepPosterior(x + 1, torch.ones(()))

    def noise(x):
        noise_calls.append(x.clone())
        return torch.full_like(x, 100.0)

    result = walk(torch.zeros(1), pairs, predict=predict, step=step, draws=draws, noise=noise,
                  callback=lambda t, x_t, pred_x0: seen.append((float(t), float(x_t))), trajectory_stride=stride)
    return result, seen, noise_calls


@pytest.mark.parametrize("stride", [0, 1, 2, 3, 7])
def test_walk_keeps_the_endpoints_and_every_stride_th_state(stride):
    nfe = 7
    result, seen, _ = _counting_walk(nfe, stride, [False] * nfe)
    kept = [0] + [n for n in range(1, nfe) if stride and n % stride == 0]   # step indices whose state is kept
    assert result.trajectory.flatten().tolist() == [float(n) for n in kept] + [float(nfe)]
    assert result.times.tolist() == [float(nfe - n) for n in kept] + [0.0]
    assert result.pred_x0.flatten().tolist() == [-float(n) for n in kept]
    assert result.x0.item() == nfe and result.nfe == nfe
    assert seen == [(float(nfe - n), float(n)) for n in range(nfe)], "the callback sees every step's (t, x_t)"


def test_walk_draws_noise_only_where_asked():
    draws = [True, False, True, False]
    result, _, noise_calls = _counting_walk(4, 0, draws)
    assert len(noise_calls) == 2
    assert result.x0.item() == 4 + 2 * 100, "each drawn step adds std · noise = 100"


def test_walk_refine_moves_the_state_before_it_is_predicted():
    pairs = [(torch.tensor(2.0), torch.tensor(1.0)), (torch.tensor(1.0), torch.tensor(0.0))]
    predicted = []

    def predict(x, t):
        predicted.append(float(x))
        return x, None

    out = walk(torch.zeros(()), pairs, predict=predict, step=lambda n, t, s, x, p, e: StepPosterior(x, None),
               draws=[False, False], noise=None, refine=lambda n, x: x + 10 * (n + 1))
    assert predicted == [10.0, 30.0] and out.x0.item() == 30.0
    assert out.trajectory[0].item() == 0.0, "the trajectory starts at the state given, before any refinement"


def test_one_step_type_and_one_result_type():
    """The bridge, the bridge sampler and the VP baselines share the types (and the VP walks the loop)."""
    assert bridge.StepPosterior is StepPosterior is diffusion.StepPosterior
    assert sampler.SampleResult is SampleResult is diffusion.SampleResult
    x = torch.randn(2, 3, dtype=torch.float64)
    res = diffusion.ddim(lambda x_t, t, cond=None: 0.5 * x_t, x, diffusion.VPSchedule(), nfe=3)
    assert isinstance(res, SampleResult) and res.nfe == 3 and not hasattr(res, "x")  # one name: x0


def test_expand_like_broadcasts_per_sample_coefficients():
    data = torch.zeros(3, 2, 4, dtype=torch.float64)
    coef = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32)
    out = expand_like(coef, data)
    assert out.shape == (3, 1, 1) and out.dtype == torch.float64
    assert torch.equal((out + data)[:, 1, 2], coef.double())
    assert expand_like(torch.tensor(2.0), data).ndim == 0
    with pytest.raises(ValueError, match=r"\(batch,\) = \(3,\); got shape \(2,\)"):
        expand_like(torch.ones(2), data)


def test_randn_like_with_one_generator_per_sample_does_not_depend_on_the_batch():
    x = torch.zeros(3, 5)
    both = randn_like(x, [torch.Generator().manual_seed(s) for s in (1, 2, 3)])
    alone = randn_like(x[1:2], [torch.Generator().manual_seed(2)])
    assert torch.equal(both[1:2], alone)
    assert torch.equal(randn_like(x, torch.Generator().manual_seed(4)), randn_like(x, torch.Generator().manual_seed(4)))
