# Every target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv test lab demo photos gpu-check bench notebook browser-test labs grade clean docs dist

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch + torchvision from the registry as one matching pair, then the package.
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -c "import torch, torchvision.ops; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (pi2sb-lab)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with everything installed

ARGS ?=
demo: $(STAMP)  ## the main job: MNIST pseudo-hashing ablation on the embedded digits (ARGS="--seeds 0 1 2" …)
	$(PY) toy/mnist.py $(ARGS)

PHOTOS_ARGS ?=
photos: $(STAMP)  ## the full tier on real photographs (CPU, torchrun ×2, no download): runs/photos/photos.md + .png
	$(PY) full/real_photos.py $(PHOTOS_ARGS)

gpu-check: $(STAMP)  ## ≤ 8 min on one CUDA GPU: CUDA tests, train/restore/degrade benchmarks, a 128² photos run
	bash bench/gpu_check.sh

bench: $(STAMP)  ## degradation throughput, ours vs OpenCV
	$(PY) bench/degrade.py $(ARGS)

# xdist: every core (JOBS=1 runs serially); --dist loadgroup keeps a file with module-scoped fixtures on one worker
JOBS ?= auto
test: $(STAMP)  ## run the whole test suite (unit, theory, notebooks, nbval) on every core
	$(PY) -m pytest -n $(JOBS) --dist loadgroup

LAB_ARGS ?=
LAB_ROOT ?= .
# containers often run as root, which Jupyter refuses without --allow-root
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# jupyter/lab/settings/overrides.json: double-clicking a .py opens it as a notebook (jupytext);
# notebooks/jupytext.toml: saving writes back the same header (git status stays clean).
lab: $(STAMP)  ## JupyterLab; the notebooks/*.py files open as notebooks (jupytext)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(LAB_ROOT) --LabApp.app_settings_dir=$(CURDIR)/jupyter/lab/settings \
		$(ROOT_FLAG) $(LAB_ARGS)

browser-test: $(STAMP) docs  ## the notebooks in JupyterLab and the built site in headless Chromium (apt install chromium); screenshots in build/browser/
	PI2SB_BROWSER=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_browser.py tests/test_site_browser.py

NB ?= notebooks/01_dirac_pair_bridge.py
P  ?=
# The parameters are checked against the notebook's parameters cell before a kernel starts
# (papermill alone runs a misspelt -p with the defaults); the executed copy goes to build/notebooks/.
notebook: $(STAMP)  ## run one notebook headless with papermill: make notebook NB=notebooks/01_….py P="-p NFE 50"
	$(PY) -m pi2sb_lab.notebook $(NB) $(P)

# Course labs (notebooks/labs/, nbgrader): student versions and autograding are build outputs in build/labs/.
COURSE ?= build/labs
labs: $(STAMP)  ## build the student versions of the course labs with nbgrader → build/labs/release/
	$(PY) -m pi2sb_lab.labs.course build --course "$(COURSE)"

LAB        ?=
SUBMISSION ?=
STUDENT    ?= student
grade: $(STAMP)  ## autograde a lab: make grade LAB=lab1 SUBMISSION=path/to/lab1.ipynb [STUDENT=id]; points per cell
	$(PY) -m pi2sb_lab.labs.course grade "$(LAB)" "$(SUBMISSION)" --student "$(STUDENT)" --course "$(COURSE)"

# The site: notebooks executed with the suite's small parameters (cached in build/docs/jupyter-cache),
# the labs' student versions, the API reference; Sphinx warnings are errors, then every internal link is checked.
docs: $(STAMP)  ## the documentation site → build/docs/html/index.html
	$(PY) -m sphinx -b html -W --keep-going -q docs build/docs/html
	$(PY) docs/check_links.py build/docs/html

dist: $(STAMP)  ## wheel + sdist → dist/, metadata checked by twine
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:  ## remove caches and build outputs (keeps .venv and runs/)
	rm -rf .pytest_cache build *.egg-info
