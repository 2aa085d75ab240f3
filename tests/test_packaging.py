"""The package installs like any other: `python -m build` gives a wheel and an sdist whose metadata passes
`twine check`; the wheel, installed into a fresh virtual environment, imports every public module and
runs notebook 01 with nothing but what `pi2sb-lab[notebooks]` declares.

Cost: the fresh environment must not download torch again (~5 GB). It is created with
``python -m venv --without-pip``, the wheel is installed into it with ``--no-deps`` *first* (so pip
sees no other pi2sb-lab), and only then a ``.pth`` file appends this environment's site-packages to
its path, as plain path: the dependencies become importable, but this environment's editable
pi2sb-lab finder (itself a ``.pth`` hook) is not run, so ``import pi2sb_lab`` finds the wheel's copy.
Because that makes every package of the dev environment importable, "nothing but what
``[notebooks]`` declares" is checked directly: every module the notebook's kernel imported must
belong to a distribution in the dependency closure of ``pi2sb-lab[notebooks]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import pi2sb_lab

ROOT = Path(__file__).resolve().parents[1]
SMALL = json.loads((ROOT / "tests" / "notebooks" / "01_dirac_pair_bridge.json").read_text())


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist, then the wheel built from that sdist (python -m build's default), from a copy of the tracked
    and untracked-but-not-ignored files: what a clone holds, and nothing is written into the repository."""
    work = tmp_path_factory.mktemp("dist")
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / "src" / name)
    # --no-isolation: setuptools comes from this environment (no download; CI may be offline)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", work / "out", work / "src"])
    wheels, sdists = sorted((work / "out").glob("*.whl")), sorted((work / "out").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in (work / "out").iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_passes(dist):
    proc = run([sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"]])
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_wheel_holds_the_package_and_its_version(dist):
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pi2sb_lab").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    stray = sorted(n for n in names if not n.startswith(("pi2sb_lab/", "pi2sb_lab-")))
    assert not stray, f"the wheel installs more than the package: {stray}"
    version = pi2sb_lab.__version__
    assert dist["wheel"].name.startswith(f"pi2sb_lab-{version}-"), (dist["wheel"].name, version)
    metadata = zipfile.ZipFile(dist["wheel"]).read(f"pi2sb_lab-{version}.dist-info/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    assert "Provides-Extra: notebooks" in metadata and "Requires-Dist: torch" in metadata


def test_the_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = {attr = "pi2sb_lab.__version__"}' in text
    assert "\nversion =" not in text.split("[project]")[1].split("\n[")[0], "pyproject.toml states a version too"


def test_the_readme_install_cell_finds_the_wheel(dist):
    """The hosted-notebook cell globs ``pi2sb_lab-*.whl``: it must match the name the build gives."""
    readme = (ROOT / "README.md").read_text()
    assert 'glob.glob("pi2sb_lab-*.whl")' in readme and '+ "[notebooks]"' in readme
    assert Path(dist["wheel"].name).match("pi2sb_lab-*.whl")


@pytest.fixture(scope="module")
def fresh_venv(dist, tmp_path_factory) -> Path:
    """A new venv holding only the wheel (no deps), then given this environment's packages as plain path."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", dist["wheel"]])
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_parent_environment.pth").write_text("\n".join(sorted(here)) + "\n")
    return python


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    return env | extra


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import pi2sb_lab
names = ["pi2sb_lab"] + [m.name for m in pkgutil.walk_packages(pi2sb_lab.__path__, "pi2sb_lab.")
                         if not any(part.startswith("_") for part in m.name.split("."))]
files = {name: importlib.import_module(name).__file__ for name in names}
from importlib.metadata import version
print(json.dumps({"files": files, "version": pi2sb_lab.__version__, "metadata": version("pi2sb-lab")}))
"""


def test_the_wheel_imports_every_public_module_from_a_fresh_venv(fresh_venv, tmp_path):
    out = json.loads(run([fresh_venv, "-c", IMPORT_ALL], cwd=tmp_path, env=clean_env()).stdout.splitlines()[-1])
    site = str(fresh_venv.parents[1])
    outside = {m: f for m, f in out["files"].items() if not f.startswith(site)}
    assert not outside, f"imported from outside the fresh venv (not the wheel): {outside}"
    expected = {".".join(p.relative_to(ROOT).with_suffix("").parts[:-1] if p.name == "__init__.py"
                         else p.relative_to(ROOT).with_suffix("").parts)
                for p in (ROOT / "pi2sb_lab").rglob("*.py")}
    expected = {m for m in expected if not any(part.startswith("_") for part in m.split("."))}
    assert expected <= set(out["files"]), f"not imported: {sorted(expected - set(out['files']))}"
    assert out["version"] == out["metadata"] == pi2sb_lab.__version__, out


CLOSURE_AND_MODULES = """
import json, sys
from importlib.metadata import distribution, packages_distributions
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

def closure(name, extras):
    seen, todo = set(), [(name, frozenset(extras))]
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        for line in distribution(name).requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return {n for n, _ in seen}

allowed = closure("pi2sb-lab", {"notebooks"})
imported = json.load(open(sys.argv[1]))
owners = packages_distributions()
undeclared = {m: owners[m] for m in imported
              if m in owners and m not in sys.stdlib_module_names
              and not any(canonicalize_name(d) in allowed for d in owners[m])}
print(json.dumps(undeclared))
"""


def test_pip_install_notebooks_extra_runs_notebook_01(fresh_venv, tmp_path):
    """`python -m pi2sb_lab.notebook` (what README says after `pip install ".[notebooks]"`) runs notebook 01 in
    the fresh venv, from a folder outside the repository, on a kernel of that venv."""
    kernel = tmp_path / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": [str(fresh_venv), "-m", "ipykernel_launcher", "-f",
                                                             "{connection_file}"], "language": "python",
                                                    "display_name": "Python 3 (fresh venv)"}))
    notebook = tmp_path / "work" / "01_dirac_pair_bridge.py"
    notebook.parent.mkdir()
    # one extra last cell records which top-level modules the kernel imported
    notebook.write_text((ROOT / "notebooks" / notebook.name).read_text()
                        + "\n# %%\nimport json, sys\njson.dump(sorted({m.split('.')[0] for m in sys.modules}), "
                          "open('kernel_modules.json', 'w'))\n")
    args = [a for name, value in SMALL.items() for a in ("-p", name, json.dumps(value))]
    out = tmp_path / "01.ipynb"
    run([fresh_venv, "-m", "pi2sb_lab.notebook", notebook, *args, "-p", "OUTPUT_DIR", tmp_path / "figures",
         "--out", out], cwd=tmp_path, env=clean_env(JUPYTER_PATH=str(tmp_path / "jupyter")))
    assert out.is_file() and any((tmp_path / "figures").iterdir()), "notebook 01 wrote no figure"
    modules = notebook.parent / "kernel_modules.json"
    assert modules.is_file(), "the kernel did not run the notebook to its last cell"
    assert "pi2sb_lab" in json.loads(modules.read_text())
    undeclared = json.loads(run([fresh_venv, "-c", CLOSURE_AND_MODULES, modules], cwd=tmp_path,
                                env=clean_env()).stdout.splitlines()[-1])
    assert not undeclared, f"notebook 01 imported packages pi2sb-lab[notebooks] does not declare: {undeclared}"
