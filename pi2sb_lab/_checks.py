"""Argument checks shared by the public functions (private; the messages are the contract).

Every check raises with a message that names the argument, the value it got and
what is allowed (made by :func:`parameter_error`, which also carries the name apart), so a
bad input stops at the boundary it entered by instead of failing deep inside torch or
numpy (or, worse, not failing). NaN is never a number here: ``x > 0`` is False for NaN,
but so is ``x <= 0``, and a check written as ``if x <= 0: raise`` lets it through;
these are written the other way round.
"""

from __future__ import annotations

import math
import numbers

import torch


def parameter_error(kind: type[Exception], parameter: str, problem: str, label: str | None = None) -> Exception:
    """``kind`` (``ValueError`` or ``TypeError``) saying ``f"{label or parameter} {problem}"``, that also
    carries the name apart: ``err.parameter`` (as the code spells it) and ``err.problem`` ("must be an
    int >= 1; got 0"). A command line that took the value as a flag says ``f"--flag {err.problem}"``
    and never rewords the library's text; the exception's type stays the plain one callers catch."""
    err = kind(f"{label or parameter} {problem}")
    err.parameter, err.problem = parameter, problem  # kept by pickling: a worker's error reaches the parent whole
    return err


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the given range; ``ValueError``/``TypeError`` otherwise.

    ``low``/``high``: bounds (None: unbounded), closed unless ``low_open``/``high_open``.
    Accepts Python and NumPy reals and 0-d tensors; never bools, NaN or ±inf.
    """
    if torch.is_tensor(value) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        span = _range_text(low, high, low_open, high_open)
        raise parameter_error(TypeError, name, f"must be a real number{span}; got {_describe(value)}")
    value = float(value)
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        span = _range_text(low, high, low_open, high_open)
        raise parameter_error(ValueError, name, f"must be a finite number{span}; got {value!r}")
    return value


def _range_text(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_int(name: str, value, *, low: int | None = None, high: int | None = None, why: str = "") -> int:
    """``value`` as a Python int in ``[low, high]``; NumPy integers are ints, bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if torch.is_tensor(value) and value.numel() == 1 and not value.is_floating_point() \
                and value.dtype != torch.bool:
            value = value.item()
        else:
            raise parameter_error(TypeError, name,
                                  f"must be an integer{_int_range(low, high)}{why}; got {_describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise parameter_error(ValueError, name, f"must be an integer{_int_range(low, high)}{why}; got {value}")
    return value


def _int_range(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_generator(name: str, generator) -> torch.Generator | None:
    """A ``torch.Generator`` or None (a seed is not a generator: ``torch.Generator().manual_seed(s)``)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise parameter_error(TypeError, name, f"must be a torch.Generator or None (for a seed s pass "
                                               f"torch.Generator().manual_seed(s)); got {_describe(generator)}")
    return generator


def check_float_tensor(name: str, x) -> torch.Tensor:
    """A floating-point tensor (the bridge and the sampler draw Gaussian noise shaped like it)."""
    if not torch.is_tensor(x):
        raise parameter_error(TypeError, name, f"must be a floating-point torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise parameter_error(TypeError, name, f"must be a floating-point tensor (float16/bfloat16/float32/"
                                               f"float64); got {x.dtype} — convert with {name}.float()")
    return x


def check_finite(name: str, x) -> None:
    """``x`` holds no NaN/inf (tensors only; a non-tensor or an integer tensor is left to the other checks).

    One reduction per call (a public entry point checks its inputs once, never per step): a NaN given to
    a sampler would otherwise come back as a NaN image without a word.
    """
    if torch.is_tensor(x) and (x.is_floating_point() or x.is_complex()) and x.numel():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            raise parameter_error(ValueError, name, f"must be finite; it holds NaN/inf in {int(bad.sum())} of "
                                                    f"{x.numel()} values (shape {tuple(x.shape)})")
