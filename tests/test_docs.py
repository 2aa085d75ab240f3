"""The documentation site's pieces that need no build: the notebook pages' generator, the internal-link
checker, and `make docs` itself. (The built site is checked in a browser by tests/test_site_browser.py.)"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
sys.path.insert(0, str(ROOT / "docs"))

import check_links  # noqa: E402
import notebook_pages  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def test_every_notebook_gets_a_page():
    """The site's list is the same glob as the suite's: a new notebooks/07_*.py gets a page by existing."""
    assert notebook_pages.notebook_sources() == NOTEBOOKS and len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_notebook_page_runs_the_suites_small_parameters_and_links_its_files(source):
    nb = notebook_pages.notebook_page(source)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    where = [i for i, t in enumerate(tags) if "parameters" in t]
    assert len(where) == 1 and "injected-parameters" in tags[where[0] + 1], "small parameters not right after the cell"
    injected = nb.cells[where[0] + 1].source
    table = ROOT / "tests" / "notebooks" / f"{source.stem}.json"
    small = json.loads(table.read_text()) if table.exists() else {}
    for name, value in (small | {"INTERACTIVE": False}).items():
        assert f"\n{name} = {value!r}" in injected, f"{name} = {value!r} missing from the injected cell:\n{injected}"
    header = next(c.source for c in nb.cells if "Download / open" in c.source)
    assert f"{{download}}`{source.name} <../../notebooks/{source.name}>`" in header
    assert f"<download/{source.stem}.ipynb>" in header
    # the page shows the notebook: every cell of the source is there, in order
    assert [c.source for c in jupytext.read(source).cells] == [c.source for c in nb.cells if c.source not in
                                                               (header, injected)]


def test_a_stale_small_parameter_fails_the_build(tmp_path, monkeypatch):
    """A name the notebook no longer has stops the docs build with the notebook's own message."""
    monkeypatch.setattr(notebook_pages, "SMALL_PARAMETERS", tmp_path)
    (tmp_path / "01_dirac_pair_bridge.json").write_text('{"NFEE": 5}')
    with pytest.raises(ValueError, match=r"unknown parameter NFEE \(did you mean NFE\?\)"):
        notebook_pages.notebook_page(ROOT / "notebooks" / "01_dirac_pair_bridge.py")


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"<html><body>{body}</body></html>")
    return tmp_path


def test_the_link_checker_passes_a_sound_site(tmp_path):
    site = _site(tmp_path, {"index.html": '<a href="a/b.html#x">b</a> <img src="img.png"> <a href="https://x.org/y">out</a>'
                                          ' <a href="#top">top</a><span id="top"></span>',
                            "a/b.html": '<h1 id="x">b</h1><a href="../index.html">back</a>'})
    (site / "img.png").write_bytes(b"png")
    assert check_links.broken_links(site) == []
    assert check_links.main([str(site)]) == 0


def test_the_link_checker_finds_missing_files_and_anchors(tmp_path):
    site = _site(tmp_path, {"index.html": '<a href="gone.html">x</a> <img src="_images/none.png"> '
                                          '<a href="b.html#nowhere">y</a>',
                            "b.html": '<h1 id="here">b</h1>'})
    broken = check_links.broken_links(site)
    assert len(broken) == 3, broken
    assert any("gone.html" in b for b in broken) and any("none.png" in b for b in broken)
    assert any("no id 'nowhere'" in b for b in broken)
    assert check_links.main([str(site)]) == 1


def test_make_docs_treats_warnings_as_errors_and_checks_links():
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", make, flags=re.M).group(1)
    assert "sphinx -b html -W" in recipe and "docs/check_links.py build/docs/html" in recipe
    assert "make docs" in (ROOT / ".ci" / "run").read_text()
