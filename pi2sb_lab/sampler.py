"""Bridge generation from the degraded X1 at t = 1 to t = 0: I2SB Alg. 2 and its implicit variants.

Every bridge family has marginals x_t = a_t X0 + b_t X1 + c_t ε, and for any noise
level ρ ∈ [0, c_s] the step from t to s < t

    x_s = a_s X̂0 + b_s X1 + √(c²_s − ρ²)·ε̂_t + ρ z,    ε̂_t = (x_t − a_t X̂0 − b_t X1)/c_t

keeps every marginal when X̂0 is the true X0 (DBIM's non-Markovian bridges; I3SB for I2SB).
ρ = ρ_Markov, the std of p(X_s | X0, X_t), is the Markovian posterior step (I2SB Alg. 2);
ρ = 0 is deterministic. The sampler's dial is η = ρ/ρ_Markov: η = 1 (the default) is
Alg. 2 exactly as before, η = 0 the implicit sampler. Written as x_s = A X̂0 + B X1 + K x_t
+ ρ z, the step's coefficients depend only on the family and the grid: they are computed
once per (family, grid, η) in float64 (:func:`step_table`, cached) and cast once per dtype
and device, so a step does no schedule arithmetic at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import torch

from ._checks import check_float_tensor, check_generator, check_int
from ._checks import check_finite
from .batch import expand_like, randn_like
from .bridge import Bridge
from .families import BridgeFamily, as_family, check_eta
from .parameterization import Model, as_parameterization
from .schedule import TimeGrid, time_grid
from .walk import SampleResult, StepPosterior, walk


@dataclass(frozen=True, eq=False)
class StepTable:
    """The coefficients of every step of one grid: x_s = A·X̂0 + B·X1 + K·x_t + ρ·z, step n = 0 … N−1
    from t = 1 down (float64 ``(N,)`` tensors). ``uses_x1``: whether any B is non-zero (not for
    I2SB's Markovian step, whose mean never had an X1 term). ``cast(dtype, device)`` gives the
    per-step 0-d coefficients in the data's dtype and device, computed once and kept."""

    grid: TimeGrid
    x0: torch.Tensor
    x1: torch.Tensor
    xt: torch.Tensor
    rho: torch.Tensor
    uses_x1: bool
    _cast: dict = field(default_factory=dict, repr=False)

    @property
    def draws(self) -> list[bool]:
        """Whether step n draws noise (ρ_n > 0)."""
        if "draws" not in self._cast:
            self._cast["draws"] = (self.rho > 0).tolist()
        return self._cast["draws"]

    def cast(self, dtype: torch.dtype, device: torch.device) -> list[tuple[torch.Tensor, ...]]:
        key = (dtype, device)
        if key not in self._cast:
            cols = [c.to(device=device, dtype=dtype).unbind() for c in (self.x0, self.x1, self.xt, self.rho)]
            self._cast[key] = list(zip(*cols))
        return self._cast[key]


_TABLES: OrderedDict = OrderedDict()
_TABLE_CACHE_SIZE = 64


def step_table(bridge: Bridge, grid: TimeGrid, eta: float = 1.0, *, boot_noise: bool = False) -> StepTable:
    """The :class:`StepTable` of ``grid`` for a family (or an I2SB schedule) at noise dial ``eta``, cached.

    η = 1: the family's Markovian step p(X_s | X0, X_t) (I2SB eq. 4 for I2SB, bit for bit).
    Otherwise ρ = η·ρ_Markov and K = √(c²_s − ρ²)/c_t, A = a_s − K a_t, B = b_s − K b_t, where
    c²_s − ρ² = (1 − η²)c²_s + η² K²_Markov c²_t keeps full precision near η = 1. At t = 1 (c_t = 0,
    x_t = X1 exactly) the ε̂ term vanishes: A = a_s, B = b_s, K = 0, and only ρ = c_s keeps the
    marginal there; ``boot_noise`` makes that first step Markovian whatever η (DBIM's "booting
    noise"), so that every later step keeps every marginal. Without it, η = 0 is deterministic
    from X1 on: with the true X0 it walks the bridge mean μ_t, I2SB's OT-ODE path.
    """
    family, eta = as_family(bridge), check_eta(eta)
    if not isinstance(boot_noise, bool):
        raise TypeError(f"boot_noise must be True or False; got {boot_noise!r}")
    key = (family, grid, eta, boot_noise)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = _build_table(family, grid, eta, boot_noise)
        while len(_TABLES) > _TABLE_CACHE_SIZE:
            _TABLES.popitem(last=False)
    else:
        _TABLES.move_to_end(key)
    return table


def _build_table(family: BridgeFamily, grid: TimeGrid, eta: float, boot_noise: bool) -> StepTable:
    times = grid.t  # float64 for the grids time_grid makes; a float32 grid keeps its dtype, as before
    t, s = times[1:].flip(0), times[:-1].flip(0)           # the order of TimeGrid.steps()
    if eta == 1.0:  # the family's own Markov step: I2SB eq. 4 for I2SB, bit for bit as before
        m = family._markov(t, s)
        return StepTable(grid, m.x0, m.x1, m.xt, m.var.sqrt(), uses_x1=bool((m.x1 != 0).any()))
    x0, x1, xt, rho = implicit_step(family, t, s, eta)
    if boot_noise and grid.t[-1] == 1:
        rho = torch.cat([family._markov(t[:1], s[:1]).var.sqrt(), rho[1:]])
    return StepTable(grid, x0, x1, xt, rho, uses_x1=True)


def implicit_step(family: BridgeFamily, t: torch.Tensor, s: torch.Tensor, eta: float) -> tuple[torch.Tensor, ...]:
    """(A, B, K, ρ) of the marginal-preserving step x_s = A X̂0 + B X1 + K x_t + ρ z at ρ = η·ρ_Markov.

    K = √(c²_s − ρ²)/c_t (the weight of ε̂_t), A = a_s − K a_t, B = b_s − K b_t. With ρ²_Markov =
    c²_s − K²_Markov c²_t, c²_s − ρ² = (1 − η²) c²_s + η² K²_Markov c²_t: no cancellation near η = 1.
    At t = 1 (c_t = 0, the state is X1 itself) the ε̂ term drops: A = a_s, B = b_s, K = 0.
    """
    m, ct, cs = family._markov(t, s), family._coeffs(t), family._coeffs(s)
    kept = ((1.0 - eta * eta) * cs.var + eta * eta * m.xt * m.xt * ct.var).clamp_min(0.0)
    pinned = ct.var == 0
    c_t = torch.where(pinned, torch.ones_like(kept), ct.var).sqrt()  # 1 where pinned: no 0/0 to mask
    xt = torch.where(pinned, torch.zeros_like(kept), kept.sqrt() / c_t)
    return cs.mu_x0 - xt * ct.mu_x0, cs.mu_x1 - xt * ct.mu_x1, xt, eta * m.var.sqrt()


def clear_step_tables() -> None:
    """Empty the step-coefficient cache (tests and benchmarks)."""
    _TABLES.clear()


def _step_posterior(table: list, x0: torch.Tensor, x_t: torch.Tensor, x1: torch.Tensor, n: int) -> StepPosterior:
    """Step n of the grid from its cached coefficients: N(A·X̂0 [+ B·X1] + K·x_t, ρ²) (Alg. 2 line 4 at η = 1)."""
    a, b, k, rho = table[n]
    mean = expand_like(a, x0) * x0 + expand_like(k, x0) * x_t
    if b is not None:
        mean = mean + expand_like(b, x0) * x1
    return StepPosterior(mean=mean, std=expand_like(rho, x0))


@torch.no_grad()
def sample(
    model: Model,
    x1: torch.Tensor,
    schedule: Bridge,
    *,
    nfe: int,
    grid: str | TimeGrid = "quadratic",
    ot_ode: bool = False,
    eta: float = 1.0,
    boot_noise: bool = False,
    cond=None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    callback: Callable[..., None] | None = None,
    trajectory_stride: int = 0,
) -> SampleResult:
    """Restore ``x1`` by walking the bridge from t = 1 to t = 0 in ``nfe`` network calls.

    ``model``: a :class:`~pi2sb_lab.parameterization.Parameterization` or a bare network
    ``net(x_t, t, cond)`` read as ε-prediction. ``schedule``: an I2SB schedule or any
    :class:`~pi2sb_lab.families.BridgeFamily`. ``grid``: "uniform", "quadratic" or a
    :class:`TimeGrid` (then ``nfe`` must match it). ``eta``: the noise dial in [0, 1],
    ρ = η·ρ_Markov (1: the Markovian posterior step, I2SB Alg. 2; 0: the implicit,
    deterministic DBIM/I3SB step; see the module docstring). ``boot_noise``: make
    the first step (from X1, where c_1 = 0) Markovian whatever η, DBIM's booting noise
    (see :func:`step_table`). ``ot_ode``: drop the injected
    noise, following the OT-ODE (I2SB Prop. 3.4): the step's mean at any η. ``callback(t=, x_t=, pred_x0=)`` is called at
    every step with the current state and the network's clean estimate: the way to watch
    (or record) the steps. ``trajectory_stride``: also keep every n-th state in the
    result (0, the default, keeps only the endpoints: at 512² and NFE 1000 keeping every
    state would take gigabytes). ``generator``: one for the whole batch, or one per sample
    (a sequence of ``len(x1)``: each sample's noise then does not depend on its batch).
    The loop is :func:`pi2sb_lab.walk.walk`, the one the VP baselines take too.
    """
    check_finite("x1", x1)
    check_float_tensor("x1", x1)
    if isinstance(generator, (list, tuple)):
        if len(generator) != x1.shape[0]:
            raise ValueError(f"generator: one per sample needs {x1.shape[0]} generators (x1's batch); "
                             f"got {len(generator)}")
        for i, g in enumerate(generator):
            check_generator(f"generator[{i}]", g)
    else:
        check_generator("generator", generator)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(t=, x_t=, pred_x0=) or None; got {callback!r}")
    param = as_parameterization(model, schedule)
    eta = check_eta(eta)
    if isinstance(grid, TimeGrid):
        if grid.nfe != nfe:
            raise ValueError(f"nfe={nfe} disagrees with the given grid of {grid.nfe} steps")
        steps = grid
    else:
        steps = _string_grid(nfe, grid)
    trajectory_stride = check_int("trajectory_stride", trajectory_stride, low=0,
                                  why=" (0 keeps only the endpoints)")
    table = step_table(schedule, steps, eta, boot_noise=boot_noise)
    coeffs = table.cast(x1.dtype, x1.device)
    if not table.uses_x1:
        coeffs = [(a, None, k, rho) for a, _, k, rho in coeffs]
    x1_kw = {"x1": x1} if param.needs_x1 else {}     # GOUB's ε-parameterization reads X1
    draws = [not ot_ode and d for d in table.draws]  # ρ > 0: not at s = 0, nor at η = 0 (but a booting step)
    # The grid is ours and already checked: the unchecked internals run here.
    return walk(x1, steps.steps(),
                predict=lambda x, t: (param._pred_x0(x, t, cond, **x1_kw), None),           # Alg. 2 line 3
                step=lambda n, t, s, x, pred_x0, _: _step_posterior(coeffs, pred_x0, x, x1, n),  # line 4, DBIM
                draws=draws, noise=lambda x: randn_like(x, generator), callback=callback,
                trajectory_stride=trajectory_stride)


_GRIDS: OrderedDict = OrderedDict()


def _string_grid(nfe: int, kind: str) -> TimeGrid:
    """``time_grid(nfe, kind)``, kept: a grid named by a string is built once (and so hashed once)."""
    key = (nfe, kind)
    grid = _GRIDS.get(key)
    if grid is None:
        grid = _GRIDS[key] = time_grid(nfe, kind)
        while len(_GRIDS) > _TABLE_CACHE_SIZE:
            _GRIDS.popitem(last=False)
    return grid
