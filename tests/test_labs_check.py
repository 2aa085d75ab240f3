"""The labs' checks: they pass the right answer and name the mistake in the wrong ones."""

import pytest
import torch

from pi2sb_lab.labs.check import close, finite, implemented, scales_like

REF = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)


def test_close_passes_the_right_answer_within_tol():
    close("q", REF + 1e-12, REF)
    close("q", REF.clone(), REF, tol=0.0)


@pytest.mark.parametrize("got, phrase", [
    (-REF, "wrong sign"),
    (1 - REF, "swapped"),
    (REF + 0.1, "off by up to 0.1"),
    (REF[:2], r"has shape \(2,\)"),
    (torch.tensor([0.25, float("nan"), 0.75], dtype=torch.float64), "non-finite"),
    ([0.25, 0.5, 0.75], "must be a torch.Tensor"),
])
def test_close_names_the_mistake(got, phrase):
    with pytest.raises(AssertionError, match=phrase):
        close("mu", got, REF, swapped_with=("the other", 1 - REF), hint="see eq. 11")


def test_finite_rejects_inf():
    with pytest.raises(AssertionError, match="1 non-finite"):
        finite("x", torch.tensor([1.0, float("inf")]))


def test_scales_like_measures_the_power():
    factors = [1.0, 0.1, 0.01]
    scales_like("d", [2.0 * f ** 0.5 for f in factors], factors, power=0.5)
    with pytest.raises(AssertionError, match=r"grows like power 1\b"):
        scales_like("d", [2.0 * f for f in factors], factors, power=0.5)
    with pytest.raises(AssertionError, match="positive finite"):
        scales_like("d", [1.0, float("nan"), 0.1], factors, power=0.5)


def test_implemented_names_the_function_that_is_still_blank():
    def inner():
        raise NotImplementedError()

    def outer():
        return inner()

    with pytest.raises(AssertionError, match="inner is not implemented yet"):
        implemented(outer)
    assert implemented(lambda a: a + 1, 1) == 2
