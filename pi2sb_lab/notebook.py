"""Notebook helpers: parameter checks (inside a notebook and before one runs), device choice, output folder.

Notebooks are run by people in JupyterLab and by papermill with injected
parameters; a bad injected value must stop the run at once with a message that
names the parameter, not fail twenty cells later. Papermill itself only *warns*
about a name the notebook does not have (``-p NFEE 5`` runs with the defaults), so
every headless path checks the names and types against the notebook's own
``parameters`` cell before a kernel starts:

* ``make notebook NB=… P="-p NAME VALUE"`` runs ``python -m pi2sb_lab.notebook``;
* from Python, :func:`execute_notebook` is papermill's ``execute_notebook`` with
  that check in front (use it instead of calling papermill directly);
* :func:`check_parameters` alone, for any other runner.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ._checks import parameter_error

PARAMETERS_TAG = "parameters"


def check_param(name: str, value: Any, kind: type | tuple[type, ...] | None = None, *,
                choices: Iterable[Any] | None = None, min: float | None = None, max: float | None = None) -> Any:
    """Validate one notebook parameter; raise ``ValueError`` naming it and what is accepted (its
    ``parameter`` attribute is ``name``, so a command line can say its flag instead).

    Floats must be finite: NaN passes every ``min``/``max`` comparison unnoticed and inf
    passes a ``min``, and both only fail (cryptically) cells later.
    """
    if kind is not None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise parameter_error(ValueError, name, f"must be {names}; got {value!r} ({type(value).__name__})",
                                  f"parameter {name}")
    if isinstance(value, float) and not math.isfinite(value):
        raise parameter_error(ValueError, name, f"must be a finite number; got {value!r}", f"parameter {name}")
    if choices is not None:
        choices = list(choices)
        if value not in choices:
            raise parameter_error(ValueError, name, f"must be one of {choices}; got {value!r}", f"parameter {name}")
    if min is not None and not value >= min:
        raise parameter_error(ValueError, name, f"must be >= {min}; got {value!r}", f"parameter {name}")
    if max is not None and not value <= max:
        raise parameter_error(ValueError, name, f"must be <= {max}; got {value!r}", f"parameter {name}")
    return value


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; ``"cuda"`` without a GPU is an error."""
    check_param("DEVICE", device, str)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise parameter_error(ValueError, "DEVICE", f"is {device!r} but no CUDA device is available; use 'cpu' or "
                                                    "'auto'", "parameter DEVICE")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise parameter_error(ValueError, "DEVICE", f"must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}",
                              "parameter DEVICE") from err


def output_dir(path: str | Path) -> Path:
    """Create (if needed) and return the folder a notebook writes its figures and tables to."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- before a notebook runs

_NO_LITERAL = object()  # a default that is an expression, not a literal: any value is let through


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The names assigned in the notebook's cell tagged ``parameters``, with their literal defaults.

    ``path``: a jupytext ``.py`` notebook or an ``.ipynb``. ``ValueError`` when the notebook
    has no such cell, or more than one.
    """
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    cells = [c for c in jupytext.read(path).cells if PARAMETERS_TAG in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path} must have exactly one cell tagged {PARAMETERS_TAG!r}; it has {len(cells)}")
    found: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) and node.value is not None else []
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except (ValueError, SyntaxError):
                    found[target.id] = _NO_LITERAL
    return found


def _kind_error(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` (the parameter cell's literal), or None when it can."""
    if default is _NO_LITERAL or default is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        kind = type(default).__name__
        return (f"parameter {name} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind} like its default {default!r}; "
                f"got {value!r} ({type(value).__name__})")
    bad = [v for v in (value if isinstance(value, (list, tuple)) else [value])
           if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        return f"parameter {name} must be finite; got {value!r}"
    return None


def check_parameters(path: str | Path, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """Check papermill ``parameters`` against the notebook's ``parameters`` cell; return them unchanged.

    ``ValueError`` for a name the cell does not assign (with the closest valid name and the
    list of all of them) and for a value of another type than the cell's literal default or a
    NaN/inf float; the notebook's own ``check_param`` cells then check ranges and choices.
    """
    parameters = dict(parameters or {})
    known = notebook_parameters(path)
    problems = []
    for name, value in parameters.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            problems.append(f"unknown parameter {name}" + (f" (did you mean {close[0]}?)" if close else ""))
        elif (why := _kind_error(name, value, known[name])) is not None:
            problems.append(why)
    if problems:
        raise ValueError(f"{Path(path).name}: " + "; ".join(problems)
                         + f". Its parameters are: {', '.join(known)}")
    return parameters


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any] | None = None, *,
                     cwd: str | Path | None = None, **papermill_kwargs) -> Path:
    """Papermill's ``execute_notebook`` with :func:`check_parameters` first (nothing runs or is written
    when a parameter is wrong). ``notebook``: a jupytext ``.py`` or an ``.ipynb``; ``output``: the executed
    ``.ipynb``; ``cwd``: the kernel's folder (default: the notebook's). Returns ``output``.
    """
    import jupytext
    import papermill

    notebook, output = Path(notebook), Path(output)
    parameters = check_parameters(notebook, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{notebook.stem}.ipynb"
        jupytext.write(jupytext.read(notebook), source)
        papermill_kwargs.setdefault("kernel_name", "python3")
        papermill_kwargs.setdefault("language", "python")  # the headers name no kernel (notebooks/jupytext.toml)
        papermill.execute_notebook(str(source), str(output), parameters=parameters,
                                   cwd=str(cwd if cwd is not None else notebook.parent), **papermill_kwargs)
    return output


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's CLI reads it (True/False/None, int, float, else a string), and also
    a Python literal list or dict when it starts with ``[`` or ``{`` (``-p SCALES "[1.0, 0.1]"``)."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
        try:  # a YAML flow list, as papermill users write it: -p VARIANTS "[a-vanilla, f-res]"
            import yaml

            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return value if isinstance(value, (list, dict)) else text
    return text


def yaml_parameters(text: str, where: str) -> dict[str, Any]:
    """papermill's ``-y YAML`` / ``-f FILE``: a YAML mapping of parameter names to values (``ValueError``
    naming ``where`` otherwise; the values are then checked like ``-p``'s)."""
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{where} is not valid YAML: {' '.join(str(err).split())}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ValueError(f"{where} must be a YAML mapping NAME: value; got {type(loaded).__name__} {loaded!r:.80}")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pi2sb_lab.notebook NOTEBOOK [-p NAME VALUE]…``: what ``make notebook`` runs."""
    parser = argparse.ArgumentParser(
        prog="python -m pi2sb_lab.notebook",
        description="Run a notebook headless with papermill (INTERACTIVE=False), after checking every -p "
                    "parameter against the notebook's parameters cell.")
    parser.add_argument("notebook", type=Path, help="a jupytext .py notebook (or an .ipynb)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter (repeatable); VALUE as papermill reads it, or a [list]")
    parser.add_argument("-r", "--parameter-raw", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a parameter with VALUE as a string (repeatable)")
    parser.add_argument("-y", "--parameters-yaml", action="append", default=[], metavar="YAML",
                        help="parameters as a YAML mapping, e.g. -y 'NFE: 50' (papermill's -y)")
    parser.add_argument("-f", "--parameters-file", type=Path, action="append", default=[], metavar="FILE",
                        help="parameters from a YAML file (papermill's -f)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the executed notebook (default: build/notebooks/<name>.out.ipynb)")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"argument notebook: no such file: {args.notebook}")
    # papermill's order: files, then YAML strings, then -p/-r (a later source wins); all checked alike
    parameters = {"INTERACTIVE": False}
    try:
        for file in args.parameters_file:
            if not file.is_file():
                raise ValueError(f"-f {file}: no such file")
            try:
                text = file.read_text()
            except UnicodeDecodeError:
                raise ValueError(f"-f {file} is not a YAML text file") from None
            parameters |= yaml_parameters(text, f"-f {file}")
        for text in args.parameters_yaml:
            parameters |= yaml_parameters(text, f"-y {text!r}")
        parameters |= {name: parse_value(value) for name, value in args.parameter}
        parameters |= {name: value for name, value in args.parameter_raw}
        check_parameters(args.notebook, parameters)
    except ValueError as err:
        parser.error(str(err))
    out = args.out or Path("build") / "notebooks" / f"{args.notebook.stem}.out.ipynb"
    if out.exists() and out.is_dir():
        parser.error(f"argument --out: {out} is a folder; give the path of the executed .ipynb")
    import papermill

    try:
        execute_notebook(args.notebook, out, parameters)
    except papermill.PapermillExecutionError as err:  # the notebook's own failure, said in one line
        print(f"{args.notebook} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
              f"executed copy with the traceback: {out}", file=sys.stderr)
        return 1
    print(f"executed notebook: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
