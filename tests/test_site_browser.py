"""The built documentation site (`make docs` → build/docs/html) in headless Chromium.

Run with `make browser-test` (it builds the site first and sets PI2SB_BROWSER=1; needs Debian's
`chromium` and the `playwright` package). The site is served from a local HTTP server on a free port
(as a web host would serve it; file:// pages may not load fonts). For the landing page and one
executed notebook page:

1. every image has loaded (``naturalWidth > 0``: no broken figure), and the page has the figure it
   is about (the landing page's MNIST picture; the notebook's matplotlib outputs);
2. math has rendered: MathJax has produced ``mjx-container`` elements (MathJax is served from the
   site itself, so this holds without internet);
3. no console error, no uncaught exception, no request that failed or answered ≥ 400.

Screenshots: build/browser/site-index.png and build/browser/site-notebook-01.png.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "docs" / "html"
ARTIFACTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("PI2SB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
NOTEBOOK_PAGE = "notebooks/01_dirac_pair_bridge.html"

pytestmark = pytest.mark.skipif(os.environ.get("PI2SB_BROWSER") != "1",
                                reason="browser test: run `make browser-test` (sets PI2SB_BROWSER=1)")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url():
    assert (SITE / "index.html").is_file(), f"no built site in {SITE}: run `make docs` first"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """The page at ``url`` once the network is idle, with everything that went wrong while loading it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})")
            if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(f"uncaught: {err}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page, problems


def images(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.images).map(im => (
        {src: im.currentSrc || im.src, complete: im.complete, width: im.naturalWidth}))""")


def wait_for_math(page, timeout_ms: float = 30_000) -> int:
    page.wait_for_selector("mjx-container", timeout=timeout_ms)
    return page.locator("mjx-container").count()


def test_landing_page(site_url, browser):
    page, problems = open_page(browser, f"{site_url}/index.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-index.png"), full_page=True)
    found = images(page)
    broken = [im["src"] for im in found if not (im["complete"] and im["width"] > 0)]
    assert not broken, f"broken images on the landing page: {broken}"
    assert any(im["src"].endswith("mnist_demo.png") for im in found), f"no MNIST picture among {found}"
    text = page.inner_text("main")
    assert "make demo" in text and "make test" in text, "the landing page lost its two commands"
    assert not problems, "the landing page had errors:\n" + "\n".join(problems)
    page.close()


def test_notebook_page(site_url, browser):
    page, problems = open_page(browser, f"{site_url}/{NOTEBOOK_PAGE}")
    n_math = wait_for_math(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-notebook-01.png"), full_page=True)
    found = images(page)
    broken = [im["src"] for im in found if not (im["complete"] and im["width"] > 0)]
    assert not broken, f"broken images on {NOTEBOOK_PAGE}: {broken}"
    figures = page.locator(".cell_output img").count()
    assert figures >= 1, f"{NOTEBOOK_PAGE} shows no executed figure ({len(found)} images in all)"
    assert n_math >= 2, f"MathJax rendered {n_math} formulas on {NOTEBOOK_PAGE}"
    assert page.locator("mjx-merror").count() == 0, "MathJax reported a formula it could not typeset"
    links = [a.get_attribute("href") or "" for a in page.locator("a.download, a.reference.download").all()]
    assert any(h.endswith(".py") for h in links) and any(h.endswith(".ipynb") for h in links), \
        f"no .py/.ipynb download links on {NOTEBOOK_PAGE}: {links}"
    assert not problems, f"{NOTEBOOK_PAGE} had errors:\n" + "\n".join(problems)
    page.close()


def readme_public_names() -> dict[str, set[str]]:
    """Every `name` or `module.name` in the README's backticks that is a public object of pi2sb_lab, with
    the dotted paths it is public under (its defining module, or a package whose ``__all__`` exports it)."""
    import importlib
    import pkgutil
    import re

    import pi2sb_lab

    modules = {m.name: importlib.import_module(m.name) for m in pkgutil.walk_packages(pi2sb_lab.__path__, "pi2sb_lab.")
               if not any(p.startswith("_") for p in m.name.split("."))}
    found: dict[str, set[str]] = {}
    for token in set(re.findall(r"`([A-Za-z_][\w.]*)[`(]", (ROOT / "README.md").read_text())):
        token = token.removeprefix("pi2sb_lab.")
        attr = token.rsplit(".", 1)[-1]
        if attr.startswith("_"):
            continue
        for name, module in modules.items():
            obj = getattr(module, attr, None)
            if obj is None or ("." in token and not name.endswith("." + token.rsplit(".", 1)[0])):
                continue
            public = attr in getattr(module, "__all__", ()) or getattr(obj, "__module__", None) == name
            if public and getattr(obj, "__module__", "").startswith("pi2sb_lab"):
                found.setdefault(f"{obj.__module__}.{attr}", set()).add(f"{name}.{attr}")
    return found


def test_every_public_name_the_readme_uses_has_a_page():
    names = readme_public_names()
    assert {"pi2sb_lab.sampler.sample", "pi2sb_lab.train.training_loop", "pi2sb_lab.hashing.Cat",
            "pi2sb_lab.diffusion.sampling.ddim"} <= set(names), sorted(names)
    missing = sorted(n for n, paths in names.items() if not any((SITE / "api" / f"{p}.html").is_file() for p in paths))
    assert not missing, f"README names without an API page: {missing}"


def test_the_lab_pages_are_student_versions():
    pages = sorted((SITE / "labs").glob("lab*.html"))
    assert len(pages) == len(sorted((ROOT / "notebooks" / "labs").glob("lab[0-9]*.py"))) >= 4, pages
    for page in pages:
        text = page.read_text()
        assert "NotImplementedError" in text, f"{page.name}: no exercise left for the student"
        leaked = [m for m in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS") if m in text]
        assert not leaked, f"{page.name} shows the instructor's markers {leaked}"
