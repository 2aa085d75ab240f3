"""The architecture, checked from the code: the core and the engine never import experiment code, and no
module grows past ~350 lines without saying why."""

from __future__ import annotations

import ast
from pathlib import Path

import pi2sb_lab

PACKAGE = Path(pi2sb_lab.__file__).parent
MAX_LINES = 350


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every pi2sb_lab module ``name`` imports, at any depth of the file (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pi2sb_lab")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pi2sb_lab"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}  # `from . import x` imports module x
    return out


def test_core_and_engine_never_import_experiment_code():
    modules = _modules()
    graph = {name: {m for m in _imports(name, path) if m in modules} for name, path in modules.items()}
    outside = [n for n in graph if not n.startswith("pi2sb_lab.experiments")]
    assert "pi2sb_lab.pipeline" in outside and "pi2sb_lab.train" in outside  # the graph really was read
    assert graph["pi2sb_lab.experiments.twod"], "the 2D experiment's imports were not found"
    offenders = {n: sorted(m for m in graph[n] if m.startswith("pi2sb_lab.experiments")) for n in outside}
    offenders = {n: m for n, m in offenders.items() if m}
    assert not offenders, f"core/engine modules import experiment code: {offenders}"


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The import reader itself: a relative import of the experiments package is caught."""
    fake = tmp_path / "pi2sb_lab" / "sampler.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from .experiments.twod import fit_bridge\n")
    assert "pi2sb_lab.experiments.twod" in _imports("pi2sb_lab.sampler", fake)


def test_modules_are_small_or_say_why():
    long = {}
    for name, path in _modules().items():
        text = path.read_text()
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "longer than" not in doc.lower():
            long[name] = lines
    assert not long, f"modules over {MAX_LINES} lines without a reason ('longer than …') in the docstring: {long}"
