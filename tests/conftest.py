import os

import numpy as np
import pytest
import torch

_EXACT_ERRORS: dict[str, float] = {}

# The suite's networks are tiny: on a 2-core machine a second intra-op thread only adds
# synchronisation (measured 40x slower for a small MLP step under load). One thread each.
torch.set_num_threads(1)
# …and the same for what the suite starts: notebook kernels, drivers, torchrun workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def gen():
    """A seeded generator: tests never depend on a random seed."""
    return torch.Generator().manual_seed(1234)


def check_exact(err, tol: float = 1e-10, name: str = "") -> float:
    """Assert that every error in ``err`` (one number, or a list, array or tensor of them) is finite and
    below ``tol``; return the largest. NaN-aware: any NaN/inf fails, where ``max(worst, err)`` would
    silently drop it."""
    errors = np.asarray(err.detach().cpu() if torch.is_tensor(err) else err, dtype=np.float64).ravel()
    assert errors.size, f"{name}: no error was measured"
    bad = int((~np.isfinite(errors)).sum())
    assert bad == 0, f"{name}: {bad} of {errors.size} errors are NaN/inf"
    worst = float(errors.max())
    assert worst < tol, f"{name}: largest error {worst:.3e} exceeds {tol:.1e}"
    return worst


@pytest.fixture
def exact(request):
    """``exact(err, tol)``: :func:`check_exact`, recording the largest error each closed-form check saw."""

    def check(err, tol: float = 1e-10, what: str = "") -> None:
        name = request.node.name + (f"[{what}]" if what else "")
        worst = check_exact(err, tol, name)
        _EXACT_ERRORS[name] = max(worst, _EXACT_ERRORS.get(name, 0.0))

    return check


def pytest_terminal_summary(terminalreporter):
    if _EXACT_ERRORS:
        terminalreporter.section("largest error seen by each exact (float64) check")
        for name, err in sorted(_EXACT_ERRORS.items()):
            terminalreporter.write_line(f"{err:10.2e}  {name}")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test` runs `-n auto --dist loadgroup`) tests are spread one by one over
    the workers, so a module-scoped fixture (a trained model, a torchrun run) would be built once per
    worker. A file with such a fixture is kept on one worker as a group; the rest spread freely."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else ()
        if any(d.scope in ("module", "package", "session") and d.baseid and d.baseid == item.nodeid.split("::")[0]
               for fixturedefs in defs for d in fixturedefs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
