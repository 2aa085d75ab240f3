"""The notebooks as a user meets them: JupyterLab (started by `make lab`) in headless Chromium.

Run with `make browser-test` (it sets PI2SB_BROWSER=1; needs Debian's `chromium` and the
`playwright` package — Playwright's own browser download is not used). For each notebook in a
copy of notebooks/ (jupytext.toml included, so the same settings apply):

1. double-click it in the file browser → it opens as a notebook (not as Python text);
2. set the parameters cell to the suite's small values (tests/notebooks/<stem>.json), Run All;
   no error output, no "Error displaying widget", figures and rendered LaTeX present;
3. every slider starts at its parameter's value; move one slider (notebook 04: one dropdown)
   and the figure changes;
4. put the parameters cell back, save, and the .py file is byte-identical to the tracked one.

Screenshots: build/browser/<stem>-1-opened.png, -2-run.png, -3-widget-before.png,
-4-widget-after.png, and the server log build/browser/lab.log.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import time

import pytest

from lab_server import ROOT, LabServer

pytestmark = pytest.mark.skipif(os.environ.get("PI2SB_BROWSER") != "1",
                                reason="browser test: run `make browser-test` (sets PI2SB_BROWSER=1)")

CHROMIUM = os.environ.get("PI2SB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
ARTIFACTS = ROOT / "build" / "browser"
RUN_TIMEOUT_S = 240   # Run All of one notebook at the suite's small parameters

# A slider's label → the parameter it starts from (the widget sections of the notebooks).
SLIDER_PARAMETER = {"β_min": "BETA_MIN", "β_max": "BETA_MAX", "NFE": "NFE", "M": "PARTNERS", "gap": "GAP",
                    "λ": "NOISE_LEVEL", "digit": "DIGIT", "strength": "STRENGTH"}
SLIDER_PARAMETER_BY_NOTEBOOK = {"02_corollary_4_2": {"β scale c": "BETA_SCALE"},
                                "03_ot_ode_limit": {"β scale c": "SCALE"},
                                "07_bridge_families_few_steps": {"η": "ETA"}}


# ----------------------------------------------------------------------------- parameters cell
def parameters_cell(text: str) -> str:
    """The source of the cell tagged ``parameters`` in a jupytext percent file."""
    m = re.search(r'^# %% tags=\["parameters"\]\n(.*?)\n(?=# %%)', text, flags=re.S | re.M)
    assert m, "no cell tagged parameters"
    return m.group(1).rstrip("\n")


def with_values(source: str, values: dict) -> str:
    """``source`` with the assignments of ``values`` replaced (their comments kept)."""
    lines = source.splitlines()
    for name, value in values.items():
        hits = [i for i, line in enumerate(lines) if re.match(rf"{name}\s*=", line)]
        assert len(hits) == 1, f"parameter {name} is not assigned once in the parameters cell"
        comment = re.search(r"\s+#.*$", lines[hits[0]])
        lines[hits[0]] = f"{name} = {value!r}" + (comment.group(0) if comment else "")
    return "\n".join(lines)


def values_of(source: str) -> dict:
    """The parameters cell's assignments, evaluated as literals."""
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.Assign)}


# ----------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` serving a copy of notebooks/ (nothing the test does can touch the repo)."""
    work = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "notebooks", work / "root" / "notebooks")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # a fresh workspace and no user settings: what a new user sees, whatever this machine's ~/.jupyter holds
    extra = f"--LabApp.workspaces_dir={work / 'workspaces'} --LabApp.user_settings_dir={work / 'user-settings'}"
    server = LabServer(root=work / "root", extra_args=extra, log=ARTIFACTS / "lab.log")
    try:
        server.wait_ready()
        server.copy = work / "root" / "notebooks"
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.page_errors = []
        pg.on("pageerror", lambda err: pg.page_errors.append(str(err)))
        pg.goto(f"{lab.url}/lab?token={lab.token}")
        pg.wait_for_selector(".jp-DirListing-item", timeout=90_000)
        pg.locator(".jp-DirListing-item", has_text="notebooks").first.dblclick()
        pg.wait_for_selector(".jp-DirListing-item:has-text('01_dirac_pair_bridge.py')", timeout=30_000)
        yield pg
        browser.close()


def current_panel(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def cell_editor(page, index: int):
    return current_panel(page).locator(".jp-Cell").nth(index).locator(".cm-content")


def set_cell_text(page, index: int, text: str) -> None:
    """Replace a cell's source as a user would: click into it, select all, type (inserted verbatim)."""
    editor = cell_editor(page, index)
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")
    shown = editor.inner_text()
    assert shown.strip() == text.strip(), f"cell {index} did not take the text:\n{shown}"


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).first.click()


def wait_run_all(page, timeout_s: float) -> None:
    """Until every code cell shows an execution count (a failed cell stops Run All: the rest stay blank)."""
    deadline = time.time() + timeout_s
    prompts = current_panel(page).locator(".jp-CodeCell .jp-InputArea-prompt")
    while time.time() < deadline:
        texts = prompts.all_text_contents()  # text_content: cells scrolled out of view are not rendered
        if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
            return
        if any("Traceback (most recent call last)" in t for t in outputs_text(page)):
            return  # the error check below reports it
        time.sleep(1)
    raise AssertionError(f"Run All did not finish within {timeout_s:.0f} s; prompts: {prompts.all_text_contents()}")


def wait_kernel_idle(lab, name: str, timeout_s: float = 90) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        states = [s["kernel"]["execution_state"] for s in lab.api("/api/sessions") if s["path"].endswith(name)]
        if states == ["idle"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"no idle kernel for {name} within {timeout_s:.0f} s")


def outputs_text(page) -> list[str]:
    return current_panel(page).locator(".jp-OutputArea-output").all_text_contents()


def interact_figure(page):
    """The <img> that the interact widget's output shows (its figure)."""
    return current_panel(page).locator(".widget-interact .jp-OutputArea-output img").first


def wait_changed(locator, attribute: str, before: str, timeout_s: float = 120) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            now = locator.get_attribute(attribute, timeout=2_000)
        except Exception:  # the output area is being replaced
            now = None
        if now and now != before:
            return now
        time.sleep(0.5)
    raise AssertionError(f"the widget's figure did not change within {timeout_s:.0f} s")


# ----------------------------------------------------------------------------- the test
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_in_jupyterlab(nb_path, lab, page):
    stem, shot = nb_path.stem, lambda name: str(ARTIFACTS / f"{nb_path.stem}-{name}.png")
    tracked = nb_path.read_bytes()
    copy = lab.copy / nb_path.name
    assert copy.read_bytes() == tracked
    original_params = parameters_cell(tracked.decode())
    small = json.loads((ROOT / "tests" / "notebooks" / f"{stem}.json").read_text())
    small_params = with_values(original_params, small)
    params = values_of(small_params)

    # 1. double-click in the file browser opens a notebook, not the text editor
    page.locator(".jp-DirListing-item", has_text=nb_path.name).first.dblclick()
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell, .jp-FileEditor:not(.lm-mod-hidden)",
                           timeout=60_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert nb_path.name in tab.inner_text()
    assert page.locator(".jp-FileEditor:not(.lm-mod-hidden)").count() == 0, \
        f"{stem}: double-click opened Python text, not a notebook (default viewer for .py)"
    wait_kernel_idle(lab, nb_path.name)
    page.screenshot(path=shot("1-opened"))

    # 2. small parameters, Run All: no error, figures, LaTeX rendered
    cells = current_panel(page).locator(".jp-Cell")
    texts = [cells.nth(i).locator(".cm-content").text_content() if cells.nth(i).locator(".cm-content").count()
             else "" for i in range(min(cells.count(), 6))]
    index = next(i for i, t in enumerate(texts) if t.strip().startswith(original_params.splitlines()[0]))
    set_cell_text(page, index, small_params)
    start = time.time()
    menu(page, "Run", "Run All Cells")
    wait_run_all(page, RUN_TIMEOUT_S)
    run_s = time.time() - start
    page.screenshot(path=shot("2-run"))
    errors = [t for t in outputs_text(page) if "Traceback (most recent call last)" in t
              or re.search(r"^\w*(Error|Exception)\b", t, flags=re.M)]
    assert not errors, f"{stem}: error output after Run All:\n" + "\n---\n".join(e[-2000:] for e in errors)
    body = current_panel(page).text_content()
    assert "Error displaying widget" not in body, f"{stem}: a widget failed to display"
    assert current_panel(page).locator(".jp-OutputArea-output img").count() >= 1, f"{stem}: no figure"
    assert current_panel(page).locator(".jp-MarkdownCell mjx-container").count() >= 1, f"{stem}: no LaTeX rendered"

    # 3. the widgets start at the parameters; moving one changes the figure
    widget = current_panel(page).locator(".widget-interact").first
    widget.scroll_into_view_if_needed()
    figure = interact_figure(page)
    figure.wait_for(timeout=120_000)
    widget.screenshot(path=shot("3-widget-before"))
    labels = {**SLIDER_PARAMETER, **SLIDER_PARAMETER_BY_NOTEBOOK.get(stem, {})}
    sliders = widget.locator(".widget-slider")
    checked = []
    for i in range(sliders.count()):
        label = sliders.nth(i).locator(".widget-label").inner_text().strip()
        readout = sliders.nth(i).locator(".widget-readout").inner_text().strip()
        assert label in labels, f"{stem}: slider {label!r} is not mapped to a parameter"
        expected = params[labels[label]]
        assert float(readout) == pytest.approx(expected, rel=1e-6, abs=1e-12), \
            f"{stem}: slider {label} starts at {readout}, parameter {labels[label]} = {expected}"
        checked.append(f"{label}={readout}")
    before = figure.get_attribute("src")
    if sliders.count():
        handle = sliders.first.locator(".noUi-handle")
        old = sliders.first.locator(".widget-readout").inner_text()
        handle.focus()
        page.keyboard.press("ArrowRight")
        assert sliders.first.locator(".widget-readout").inner_text() != old, "the slider did not move"
        moved = f"slider {sliders.first.locator('.widget-label').inner_text()}: {old} → " \
                f"{sliders.first.locator('.widget-readout').inner_text()}"
    else:  # notebook 04 explores finished runs: dropdowns only
        select = widget.locator("select").last
        options = select.locator("option").all_inner_texts()
        current = select.input_value()
        other = next(o for o in options if o != current)
        select.select_option(label=other)
        moved = f"dropdown: {current} → {other}"
    wait_changed(interact_figure(page), "src", before)
    widget.screenshot(path=shot("4-widget-after"))

    # 4. parameters back, save: the file on disk is byte-identical to the tracked one
    set_cell_text(page, index, original_params)
    page.keyboard.press("Control+s")
    deadline = time.time() + 30
    while page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current.jp-mod-dirty").count() and \
            time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    saved = copy.read_bytes()
    assert saved == tracked, f"{stem}: saving changed the file:\n" + "".join(
        __import__("difflib").unified_diff(tracked.decode().splitlines(True), saved.decode().splitlines(True),
                                           "tracked", "saved"))
    # close the tab and shut its kernel down (two cores: one kernel at a time)
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()
    for session in lab.api("/api/sessions"):
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")
    assert not page.page_errors, f"uncaught errors in the page: {page.page_errors}"
    print(f"{stem}: Run All {run_s:.0f} s; sliders at parameters: {', '.join(checked) or 'none'}; {moved}; "
          f"saved file byte-identical")
