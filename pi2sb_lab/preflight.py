"""Checks every driver runs before it writes anything: paths, devices, input images, output names.

``full/train.py``, ``full/restore.py``, ``full/make_testset.py``, ``full/evaluate.py``
and ``toy/`` call these on their parsed arguments; each raises :class:`PreflightError`
naming the argument, what it got and what is allowed, and creates nothing. A driver
turns it into argparse's answer (usage line, ``error: …``, exit 2) with
:func:`argparse_errors`, and makes its output folder only once every check passed — so
a refused start leaves no folder that would block the corrected rerun.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

import torch

from pi2sb_lab.data.images import ImageError, ImageFiles

__all__ = ["PreflightError", "argparse_errors", "check_device", "check_out_dir", "check_apart", "check_images",
           "output_stems", "check_decodes"]


class PreflightError(ValueError):
    """A setting, path or device that cannot work; the message names the argument."""


@contextlib.contextmanager
def argparse_errors(parser: argparse.ArgumentParser):
    """Turn a :class:`PreflightError` raised inside into ``parser.error`` (exit 2, no traceback)."""
    try:
        yield
    except PreflightError as err:
        parser.error(str(err))


def check_device(device: str | None, name: str = "--device") -> str | None:
    """``None`` (choose: CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` with such a GPU here."""
    if device is None:
        return None
    allowed = "cpu, cuda or cuda:N (left out: cuda when there is a GPU, else cpu)"
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        hint = " (did you mean cuda?)" if str(device).lower() in ("gpu", "nvidia", "cuda0") else ""
        raise PreflightError(f"{name} must be {allowed}; got {device!r}{hint}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PreflightError(f"{name} {device}: no CUDA GPU is visible on this machine "
                                 f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise PreflightError(f"{name} {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                                 f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return device


def check_out_dir(path: str | os.PathLike, name: str = "--out") -> Path:
    """An output folder that can be made: not empty text (an unset shell variable), not an existing file,
    under a writable folder. Creates nothing."""
    if str(path).strip() == "":
        raise PreflightError(f"{name} is empty (an unset shell variable?): give the output folder's path")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PreflightError(f"{name} {path} exists and is not a folder")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PreflightError(f"{name} {path} cannot be created: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PreflightError(f"{name} {path} cannot be written: no write permission in {ancestor}")
    return path


def check_apart(inputs: dict[str, Path], out: Path, out_name: str) -> None:
    """``out`` is neither one of ``inputs`` (``{argument name: path}``) nor inside one, nor one inside ``out``:
    outputs must not become inputs of a rerun, nor inputs be overwritten."""
    resolved = out.resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        src = Path(path).resolve()
        if resolved == src or src in resolved.parents:
            raise PreflightError(f"{out_name} {str(out)!r} is the input folder or inside it ({name} {str(path)!r}); "
                                 "choose an output folder outside the input")
        if resolved in src.parents:
            raise PreflightError(f"{out_name} {str(out)!r} holds the input {name} {str(path)!r}: outputs would mix "
                                 "with inputs; choose an output folder outside it")


def check_images(path: Path, size: int | None, name: str) -> ImageFiles:
    """The images of a folder or zip at ``path``: it exists, is one of the two, and lists at least one
    PNG/JPEG (nothing is decoded yet)."""
    if str(path).strip() == "":
        raise PreflightError(f"{name} is empty (an unset shell variable?): give a folder or a .zip of PNG/JPEG images")
    path = Path(path)
    if not path.exists():
        raise PreflightError(f"{name} {str(path)!r} does not exist: no such folder or zip of PNG/JPEG images")
    try:
        files = ImageFiles(path, size)
    except ValueError as err:
        raise PreflightError(f"{name} {str(path)!r}: not a folder or a zip of images ({err})") from None
    if len(files) == 0:
        raise PreflightError(f"{name} {str(path)!r}: no PNG/JPEG images (.png, .jpg, .jpeg) "
                             f"in {'this zip' if files.is_zip else 'this folder or its sub-folders'}")
    return files


def output_stems(files: ImageFiles, name: str) -> list[str]:
    """The output stem of each input name (``sub/a.jpg`` → ``sub/a``), after checking that every one stays
    inside the output folder (no ``..``, not absolute: a zip member ``../../x.png`` would escape) and that
    no two inputs share one (``a.png`` and ``a.jpg`` would overwrite each other's output)."""
    stems, owners = [], defaultdict(list)
    for member in files.names:
        pure = PurePosixPath(member)
        if pure.is_absolute() or ".." in pure.parts or "\\" in member or member.startswith("~"):
            raise PreflightError(f"{name} {str(files.root)!r}: the name {member!r} would put its output outside "
                                 "the output folder; rename it (no '..', '\\', '~' or leading '/')")
        stem = str(pure.with_suffix(""))
        stems.append(stem)
        owners[stem].append(member)
    clashes = [group for group in owners.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" and ".join(group) for group in clashes[:3])
        raise PreflightError(f"{name} {str(files.root)!r}: {len(clashes)} output name(s) would be written by two "
                             f"inputs ({shown}{' …' if len(clashes) > 3 else ''}): every output is NAME.png, so "
                             "rename or remove one of each")
    return stems


def check_decodes(files: ImageFiles, name: str, tries: int = 16) -> None:
    """At least one of the first ``tries`` files decodes (a folder of text files renamed .png, an
    all-16-bit-float set, a zip of truncated files fail here, not after the run folder is made)."""
    errors = []
    for i in range(min(tries, len(files))):
        try:
            files.read(i)
            return
        except ImageError as err:
            errors.append(str(err))
    raise PreflightError(f"{name} {str(files.root)!r}: none of the first {len(errors)} of {len(files)} image(s) "
                         f"decodes; the first: {errors[0]}")
