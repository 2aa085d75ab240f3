"""Serve MathJax 3 from the site itself (no CDN): the site renders its math offline, and the browser test
can assert it. The files come from the `sphinx-mathjax-offline` distribution (its folder name has
hyphens, so it is found through its metadata, not imported); this extension, unlike that one, is
declared safe for Sphinx's parallel build."""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

from sphinx.util.fileutil import copy_asset


def _mathjax_dir() -> Path:
    folder = Path(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (folder / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax not found in {folder}: pip install sphinx-mathjax-offline (the docs extra)")
    return folder


def _copy(app, exc) -> None:
    if exc is None:
        copy_asset(str(_mathjax_dir()), str(Path(app.outdir) / "_static" / "mathjax"))


def setup(app):
    _mathjax_dir()   # fail at once, not after the whole build
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
