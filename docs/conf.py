"""Sphinx configuration of the pi2sb-lab site (`make docs` → build/docs/html)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "docs" / "_ext")]

import pi2sb_lab  # noqa: E402

project = "pi2sb-lab"
author = "the pi2sb-lab developers"
copyright = "the pi2sb-lab developers"
release = version = pi2sb_lab.__version__

extensions = [
    "myst_nb",                 # Markdown pages and the notebooks (executed, cached)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",  # one page per public name (docs/_templates/autosummary)
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "mathjax_local",           # docs/_ext: MathJax 3 served from _static (no CDN; renders offline)
    "notebook_pages",          # docs/_ext: notebook and lab pages from the .py sources
]

root_doc = "index"
exclude_patterns = ["_build", "notebooks/download/*", "labs/download/*", "**/.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]

# ---------------------------------------------------------------- MyST and notebook execution
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "cache"                    # jupyter-cache: an unchanged notebook is not re-run
nb_execution_cache_path = str(ROOT / "build" / "docs" / "jupyter-cache")
nb_execution_excludepatterns = ["labs/*"]      # student versions: unfinished by design
nb_execution_timeout = 900
nb_execution_raise_on_error = True             # a notebook that errs fails the build
nb_execution_in_temp = True
nb_merge_streams = True

# ---------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_ignore_module_all = False          # a module's public names are its __all__
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = False

# ---------------------------------------------------------------- HTML
html_theme = "sphinx_book_theme"
html_title = "pi2sb-lab"
html_static_path = ["_static"]
html_favicon = "_static/favicon.png"   # else a browser asks the host for /favicon.ico (a 404)
html_theme_options = {
    "use_download_button": True,    # each page's source (.ipynb for the notebooks)
    "show_toc_level": 2,
    "home_page_in_toc": True,
    # the API reference has a page per name: the sidebar shows only the current page's branch (a
    # fully expanded tree in each of ~400 pages made writing them quadratic)
    "collapse_navbar": True,
    "max_navbar_depth": 3,
}
html_context = {"default_mode": "light"}   # unset, the theme's script logs a console error
