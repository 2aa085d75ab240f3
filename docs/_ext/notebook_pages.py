"""Sphinx extension: the site's notebook and lab pages, generated from the committed ``.py`` sources.

Before Sphinx reads anything (``builder-inited``):

* every ``notebooks/[0-9]*.py`` (a glob: a new notebook gets a page by existing) becomes
  ``docs/notebooks/<stem>.ipynb``: the notebook with the test suite's small parameters injected after
  its ``parameters`` cell — the same table the suite uses, ``tests/notebooks/<stem>.json`` — and a
  first cell with the download links. myst-nb executes it; its jupyter-cache keys on the code cells,
  so an unchanged notebook is not run again.
* the download copies (``docs/notebooks/download/<stem>.ipynb``) are the plain notebooks, full-size
  defaults, as a user would open them.
* every course lab becomes ``docs/labs/<stem>.ipynb``: nbgrader's *student* version (solutions and
  hidden tests stripped by ``pi2sb_lab.labs.course.build``), shown without executing it; the download
  (``docs/labs/download/<stem>.ipynb``) is that version exactly as nbgrader released it.

Files are only rewritten when their content changes, so Sphinx's incremental build stays incremental.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOTEBOOKS = ROOT / "notebooks"
SMALL_PARAMETERS = ROOT / "tests" / "notebooks"   # one table for the suite and the site
BUILD = ROOT / "build" / "docs"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9]*.py"))


def small_parameters(stem: str) -> dict:
    """The suite's small parameters for notebook ``stem``, with widgets off and figures written under build/."""
    params = {"INTERACTIVE": False, "OUTPUT_DIR": str(BUILD / "notebook-output" / stem)}
    table = SMALL_PARAMETERS / f"{stem}.json"
    if table.exists():
        params.update(json.loads(table.read_text()))
    return params


def _write_if_changed(nb, path: Path) -> None:
    text = nbformat.writes(nb)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _plain(source: Path):
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def notebook_page(source: Path):
    """The page's notebook: download links, the notebook, the small parameters injected after its parameters cell."""
    from pi2sb_lab.notebook import check_parameters

    params = check_parameters(source, small_parameters(source.stem))   # a stale table fails the build here
    nb = _plain(source)
    where = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(where) != 1:
        raise ValueError(f"{source.name} needs exactly one cell tagged 'parameters'")
    shown = ", ".join(f"`{k} = {v!r}`" for k, v in params.items() if k != "OUTPUT_DIR")
    injected = nbformat.v4.new_code_cell(
        "# Parameters of this page's build (the test suite's small ones)\n"
        + "\n".join(f"{k} = {v!r}" for k, v in params.items()),
        metadata={"tags": ["injected-parameters", "remove-cell"]})
    nb.cells.insert(where[0] + 1, injected)
    rel = f"../../notebooks/{source.name}"
    return with_header(nb, "Download / open",
                       f"{{download}}`{source.name} <{rel}>` (jupytext source; `make lab` opens it as a notebook) · "
                       f"{{download}}`{source.stem}.ipynb <download/{source.stem}.ipynb>` (Jupyter, Colab) · "
                       f"run it headless: `make notebook NB=notebooks/{source.name}`.\n\n"
                       f"This page was executed when the site was built, with the test suite's small parameters "
                       f"({shown}); the defaults in the parameters cell are the full-size run.")


def with_header(nb, title: str, body: str):
    """``nb`` with an admonition ``title``/``body`` right under its title cell (or first, without one)."""
    header = nbformat.v4.new_markdown_cell(f"```{{admonition}} {title}\n{body}\n```")
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, header)
    return nb


def lab_page(source: Path, released: Path):
    nb = nbformat.read(released, as_version=4)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return with_header(nb, "Student version",
                       "The solutions and hidden tests are removed (`make labs` builds this version with nbgrader). "
                       f"{{download}}`Download {source.stem}.ipynb <download/{source.stem}.ipynb>`, fill in every "
                       "`raise NotImplementedError()`, and hand it in; the instructor grades it with `make grade`.")


def student_labs() -> dict[str, Path]:
    """``{stem: released notebook}``; nbgrader runs only when a lab source is newer than its release."""
    from pi2sb_lab.labs.course import build, lab_sources

    course = BUILD / "labs"
    sources = lab_sources(NOTEBOOKS / "labs")
    released = {lab: course / "release" / lab / f"{src.stem}.ipynb" for lab, src in sources.items()}
    stale = [lab for lab, src in sources.items()
             if not released[lab].exists() or released[lab].stat().st_mtime < src.stat().st_mtime]
    if stale:
        released.update(build(stale, source_dir=NOTEBOOKS / "labs", course=course))
    return {sources[lab].stem: path for lab, path in released.items()}


def use_this_python_as_kernel() -> None:
    """Execute with the interpreter that runs Sphinx: a kernelspec ``python3`` first on JUPYTER_PATH
    (an environment's own ``python3`` kernel may point at another environment's interpreter)."""
    import os

    kernel = BUILD / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec, indent=1))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernel.parents[1]), os.environ.get("JUPYTER_PATH")]))


def generate(app=None) -> None:
    use_this_python_as_kernel()
    wanted = set()
    for source in notebook_sources():
        page = DOCS / "notebooks" / f"{source.stem}.ipynb"
        _write_if_changed(notebook_page(source), page)
        _write_if_changed(_plain(source), DOCS / "notebooks" / "download" / f"{source.stem}.ipynb")
        wanted |= {page, DOCS / "notebooks" / "download" / f"{source.stem}.ipynb"}
    for stem, released in student_labs().items():
        page = DOCS / "labs" / f"{stem}.ipynb"
        _write_if_changed(lab_page(NOTEBOOKS / "labs" / f"{stem}.py", released), page)
        download = DOCS / "labs" / "download" / f"{stem}.ipynb"   # the student version exactly as released
        _write_if_changed(nbformat.read(released, as_version=4), download)
        wanted |= {page, download}
    # a renamed or deleted notebook must not leave its old page behind
    for old in [*(DOCS / "notebooks").rglob("*.ipynb"), *(DOCS / "labs").rglob("*.ipynb")]:
        if old not in wanted:
            old.unlink()


def setup(app):
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
