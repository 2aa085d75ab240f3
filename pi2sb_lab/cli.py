"""Argument types and checks shared by the command-line drivers (``toy/``, ``full/``, ``bench/``).

A bad value on the command line gets argparse's own answer: a usage line and
``error: argument --flag: <what is allowed>; got <value>``, exit code 2, no
traceback — and the check runs before anything is written, so no folder is left
behind. The type functions raise ``argparse.ArgumentTypeError`` (whose message
argparse prints as it is); :func:`check_out_dir` is called on the parsed value.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def int_at_least(low: int, *, high: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]`` (``what`` says what it counts)."""
    span = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {span}{what}; got {text!r}")
        return value

    parse.__name__ = f"int {span}"
    return parse


def seed_value(text: str) -> int:
    """An argparse ``type`` for ``--seeds``: an integer >= 0."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0, e.g. --seeds 0 1 2; got {text!r}")
    return seed


def path_arg(text: str) -> Path:
    """An argparse ``type`` for a path: empty text (an unset shell variable, ``--out "$OUT"``) is refused
    instead of becoming ``Path("") == "."``, the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?): give a path")
    return Path(text)


def check_out_dir(parser: argparse.ArgumentParser, path: Path, flag: str = "--out") -> Path:
    """Refuse (``parser.error``, exit 2) an output folder that cannot be one: an existing file, or a
    path whose nearest existing ancestor is not a writable folder (``preflight.check_out_dir``). Creates nothing."""
    from pi2sb_lab.preflight import argparse_errors
    from pi2sb_lab.preflight import check_out_dir as check

    with argparse_errors(parser):
        check(path, f"argument {flag}:")
    return Path(path)


def make_out_dir(parser: argparse.ArgumentParser, path: Path, flag: str = "--out") -> Path:
    """:func:`check_out_dir`, then create the folder; an ``OSError`` (read-only file system, a
    permission that ``os.access`` does not see, e.g. as root on /proc) becomes ``parser.error``."""
    check_out_dir(parser, path, flag)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"argument {flag}: cannot create {path}: {err.strerror or err}")
    return Path(path)


def flag_error(err: Exception, flags: dict[str, str]) -> str:
    """``err``'s message as the command line says it: where the library named the parameter it rejects
    (``err.parameter`` and ``err.problem``, see ``_checks.parameter_error``) and ``flags`` maps that name to the flag
    that set it, the flag takes its place; any other error keeps its own words."""
    flag = flags.get(getattr(err, "parameter", None))
    return f"{flag} {err.problem}" if flag else str(err)
