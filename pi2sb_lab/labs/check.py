"""Checks for the labs' graded cells: each failure says what is wrong in words a student can act on.

An autograded cell earns its points when it runs without an exception, so every check raises
``AssertionError`` with a message that names the quantity, the size of the error and, where the
pattern is recognisable, the likely mistake (a flipped sign, two swapped coefficients, NaN).
"""

from __future__ import annotations

import math

import torch

__all__ = ["implemented", "close", "finite", "scales_like"]


def implemented(fn, *args, **kwargs):
    """Call a student's function; ``NotImplementedError`` becomes a message saying which one to write."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        tb = err.__traceback__
        while tb.tb_next is not None:  # the function that raised it: fn itself or one it calls
            tb = tb.tb_next
        raise AssertionError(f"{tb.tb_frame.f_code.co_name} is not implemented yet: replace "
                             f"`raise NotImplementedError()` with your code") from None


def finite(name: str, value: torch.Tensor) -> None:
    """``value`` is a tensor without NaN or ±inf."""
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise AssertionError(f"{name} has {bad} non-finite entries (NaN or inf): look for a division by zero, "
                             f"e.g. σ² at t = 0")


def close(name: str, got, expected: torch.Tensor, *, tol: float = 1e-10, hint: str = "",
          swapped_with: tuple[str, torch.Tensor] | None = None) -> None:
    """``got`` equals ``expected`` (same shape, largest absolute difference at most ``tol``; 0: bit for bit).

    ``swapped_with``: the name and value of a sibling quantity, so that "you returned the other
    one" can be recognised; ``hint``: appended to any failure (e.g. the equation to re-read).
    """
    tail = f" {hint}" if hint else ""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{name} must be a torch.Tensor; got {type(got).__name__}.{tail}")
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(f"{name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}.{tail}")
    finite(name, got)
    got, expected = got.double(), expected.double()
    err = (got - expected).abs().max().item()
    if err <= tol:
        return
    scale = max(expected.abs().max().item(), 1e-300)
    if (got + expected).abs().max().item() < tol * max(1.0, scale):
        raise AssertionError(f"{name} has the wrong sign (it equals minus the expected value).{tail}")
    if swapped_with is not None and (got - swapped_with[1].double()).abs().max().item() < tol:
        raise AssertionError(f"{name} equals {swapped_with[0]}: the two are swapped.{tail}")
    where = int((got - expected).abs().flatten().argmax())
    raise AssertionError(f"{name} is off by up to {err:.3g} (at flat index {where}: got "
                         f"{got.flatten()[where].item():.6g}, expected {expected.flatten()[where].item():.6g}; "
                         f"allowed {tol:.0e}).{tail}")


def scales_like(name: str, values: list[float], factors: list[float], *, power: float, tol: float = 1e-8,
                hint: str = "") -> None:
    """``values[i] / values[0] == (factors[i] / factors[0]) ** power`` for every ``i``."""
    tail = f" {hint}" if hint else ""
    if len(values) != len(factors) or len(values) < 2:
        raise AssertionError(f"{name}: need one value per factor (at least two); got {len(values)} for "
                             f"{len(factors)} factors.{tail}")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
        raise AssertionError(f"{name} must be positive finite numbers; got {values}.{tail}")
    for v, f in zip(values[1:], factors[1:]):
        ratio, want = v / values[0], (f / factors[0]) ** power
        if abs(ratio - want) > tol * max(1.0, want):
            measured = math.log(ratio) / math.log(f / factors[0])
            raise AssertionError(f"{name}: at factor {f:g} the ratio to factor {factors[0]:g} is {ratio:.6g}, "
                                 f"expected {want:.6g} (power {power:g}); yours grows like power {measured:.3g}."
                                 f"{tail}")
