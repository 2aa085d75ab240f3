"""Slider helpers: the browser snaps a slider to min + k·step, so the grid must pass through the parameter."""

import math

import pytest

from pi2sb_lab.viz import grid_range, int_slider, linear_slider, log_slider


def on_grid(value, lo, step):
    k = (value - lo) / step
    return abs(k - round(k)) < 1e-9


@pytest.mark.parametrize("value, low, high, step", [
    (0.3, -3.0, 1.0, 0.1), (0.05, 0.0, 1.0, 0.05), (math.log10(0.3), -3.0, 1.0, 0.1),
    (-1.30103, -3.0, 0.0, 0.1), (2.0, 0.2, 4.0, 0.1), (0.8, 0.0, 1.0, 0.05), (1.0, 0.0, 1.0, 0.05),
])
def test_grid_range_holds_the_value_and_stays_inside(value, low, high, step):
    lo, hi = grid_range(value, low, high, step)
    assert low - 1e-12 <= lo <= value <= hi <= high + 1e-12, (lo, hi)
    assert on_grid(value, lo, step) and on_grid(hi, lo, step), (lo, hi)
    assert lo - low < step + 1e-12 and high - hi < step + 1e-12, "the range lost more than one step at an end"


def test_grid_range_widens_to_a_value_outside():
    assert grid_range(5.0, 0.0, 1.0, 0.1)[1] == 5.0
    assert grid_range(-1.0, 0.0, 1.0, 0.1)[0] == -1.0


@pytest.mark.parametrize("bad", [dict(step=0.0), dict(step=float("nan")), dict(low=2.0)])
def test_grid_range_refuses_bad_input(bad):
    args = dict(value=0.5, low=0.0, high=1.0, step=0.1) | bad
    with pytest.raises(ValueError, match="step|low|finite"):
        grid_range(**args)


def test_sliders_start_at_the_parameter_on_their_grid():
    pytest.importorskip("ipywidgets")
    s = log_slider(0.3, 1e-3, 10, description="β_max")          # the old slider showed 0.316
    assert s.value == 0.3 and on_grid(math.log10(0.3), s.min, s.step) and s.min >= -3 - 1e-12 and s.max <= 1
    s = log_slider(0.05, 1e-3, 1)                                # the old λ slider showed 0.0501
    assert s.value == 0.05 and on_grid(math.log10(0.05), s.min, s.step)
    s = linear_slider(0.8, 0.0, 1.0, step=0.05)
    assert s.value == 0.8 and 0.0 <= s.min and s.max <= 1.0 + 1e-12
    assert int_slider(300, 1, 200).max == 300
    with pytest.raises(ValueError, match="positive"):
        log_slider(0.0, 1e-3, 1)
