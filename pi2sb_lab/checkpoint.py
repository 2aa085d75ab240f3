"""Checkpoints that later code can still read: state_dicts, the run's config, the version, counters.

A checkpoint file holds only tensors and plain values — never pickled classes — so
``torch.load(..., weights_only=True)`` reads it, and a refactor of the model code
never makes an old checkpoint unloadable (the lucidrains #132 complaint). Layout::

    {"format": 1, "version": "0.1.0", "config": {...JSON-like...}, "fingerprint": {...} | None,
     "step": int, "samples_seen": int, "parts": {"model": state_dict, "ema": ..., ...}}

Files are written atomically (``atomic.atomic_path``): to a temporary file in the same folder,
fsync'ed, then renamed over the target with ``os.replace``. A run killed mid-write
leaves the previous checkpoint intact, never a truncated one.

The *fingerprint* says what a checkpoint belongs to (the model's class, configuration
and parameter shapes, the objective with its schedule, the variant): resuming a run
from a folder that holds another run's checkpoint — of the same shapes, so that
``load_state_dict`` would happily take it — is refused by :func:`check_fingerprint`
with both fingerprints, unless the caller overrides it explicitly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .atomic import atomic_path

FORMAT = 1
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
_JSON_LEAVES = (str, int, float, bool, type(None))
# Leaves torch.load(weights_only=True) accepts besides JSON-like values.
_TORCH_LEAVES = (torch.Tensor, nn.Parameter, torch.dtype, torch.device)


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, truncated, or holds something other than plain state."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that belongs to another run (its fingerprint differs from the one expected)."""


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns. ``parts`` maps names ("model", "ema", "optimizer", …) to state."""

    path: Path
    version: str
    config: dict
    step: int
    samples_seen: int
    parts: dict = field(repr=False)
    fingerprint: dict | None = None

    def restore(self, **targets) -> None:
        """``ckpt.restore(model=m, optimizer=opt)``: ``load_state_dict`` each target from the part of that name.

        A part that does not fit its target (other shapes, other keys) raises :class:`CheckpointError`
        naming the file and the part, with torch's own explanation.
        """
        missing = [name for name in targets if name not in self.parts]
        if missing:
            raise KeyError(f"{self.path} has no part(s) {missing}; it holds {sorted(self.parts)}")
        for name, target in targets.items():
            try:
                target.load_state_dict(self.parts[name])
            except (RuntimeError, ValueError, KeyError) as err:
                raise CheckpointError(
                    f"{self.path}: part {name!r} does not fit the {type(target).__name__} it is restored into "
                    f"(was the checkpoint written for another model or settings?). {_first_lines(err, 4)}"
                ) from err


def _first_lines(err: BaseException, n: int = 1) -> str:
    """``TypeName: first n lines of the message`` (an empty message, e.g. EOFError(), is fine too)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: " + (" | ".join(line.strip() for line in lines[:n])[:600] if lines else "(no message)")


def check_config(config: dict | None, where: str = "config") -> dict:
    """A copy of ``config`` with tuples as lists, after checking every value is JSON-like.

    JSON-like: str, int, float, bool, None, and lists/tuples/dicts (string keys) of them.
    Anything else (a module, a function, a Path, a numpy scalar) raises ``TypeError``
    naming the key, so the config stays loadable with ``weights_only=True`` and
    dumpable to ``config.json``.
    """
    if config is None:
        return {}
    if type(config) is not dict:
        raise TypeError(f"{where} must be a dict; got {type(config).__name__}")

    def clean(value, key: str):
        if type(value) in _JSON_LEAVES:
            return value
        if type(value) in (list, tuple):
            return [clean(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if type(value) is dict:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    raise TypeError(f"{key} has a non-string key {k!r}; config keys must be strings")
                out[k] = clean(v, f"{key}[{k!r}]")
            return out
        raise TypeError(
            f"{key} = {value!r} is a {type(value).__name__}; config values must be JSON-like "
            "(str, int, float, bool, None, lists and dicts of them) — store e.g. str(path) or a name instead"
        )

    return clean(config, where)


def _check_state(value: Any, where: str) -> Any:
    """Return ``value`` with modules/optimizers replaced by their state_dict; reject anything unsafe."""
    if hasattr(value, "state_dict") and callable(value.state_dict) and not isinstance(value, dict):
        value = value.state_dict()
    if type(value) in _JSON_LEAVES or type(value) in _TORCH_LEAVES or type(value) is torch.Size:
        return value
    if type(value) in (list, tuple):
        return type(value)(_check_state(v, f"{where}[{i}]") for i, v in enumerate(value))
    if type(value) in (dict, OrderedDict):
        out = type(value)()
        for k, v in value.items():
            if type(k) not in _JSON_LEAVES:
                raise TypeError(f"{where} has a key of type {type(k).__name__}; keys must be str, int, float or bool")
            out[k] = _check_state(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}; checkpoints hold only tensors, "
        "state_dicts and plain values (pickled classes break loading with weights_only=True)"
    )


def save_checkpoint(path: str | os.PathLike, *, config: dict | None = None, fingerprint: dict | None = None,
                    step: int = 0, samples_seen: int = 0, **parts) -> Path:
    """Write a checkpoint atomically and return its path.

    ``parts``: named state — an ``nn.Module``, an optimizer or anything with
    ``state_dict()`` is stored as its state_dict; tensors and plain values as they
    are (e.g. ``losses=torch.tensor(...)``). ``config`` and ``fingerprint`` (what the
    checkpoint belongs to, see :func:`check_fingerprint`) must be JSON-like (see
    :func:`check_config`). Nothing is written when a part is not storable.
    """
    path = Path(path)
    for name, value in (("step", step), ("samples_seen", samples_seen)):
        if type(value) is not int or value < 0:
            raise TypeError(f"{name} must be an int >= 0; got {value!r}")
    payload = {
        "format": FORMAT,
        "version": __version__,
        "config": check_config(config),
        "fingerprint": None if fingerprint is None else check_config(fingerprint, "fingerprint"),
        "step": step,
        "samples_seen": samples_seen,
        "parts": {name: _check_state(value, f"parts[{name!r}]") for name, value in parts.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=True) as tmp, open(tmp, "xb") as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (naming
    the path) for a truncated/corrupt file or one that holds pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes) — not written by "
                              "save_checkpoint, whose writes are atomic; delete it to resume from an earlier one")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (bad zip), EOFError, …
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated, corrupt, or holds objects other than tensors and "
            f"plain values (read with weights_only=True). {_first_lines(err)}"
        ) from err
    keys = ("format", "version", "config", "step", "samples_seen", "parts")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or any(k not in payload for k in keys):
        raise CheckpointError(f"{path} is not a pi2sb_lab checkpoint (format {FORMAT})")
    if payload["version"] != __version__:
        warnings.warn(f"{path} was written by pi2sb_lab {payload['version']}; this is {__version__}", stacklevel=2)
    return Checkpoint(path=path, version=payload["version"], config=payload["config"], step=payload["step"],
                      samples_seen=payload["samples_seen"], parts=payload["parts"],
                      fingerprint=payload.get("fingerprint"))


def model_fingerprint(model: nn.Module) -> dict:
    """What identifies a model's architecture: its class (and a wrapped backbone's), the backbone's
    ``config`` when it keeps one (``UNet.config``), the parameter count and a hash of every state
    entry's name and shape. Weights do not enter: the same run at another step has the same one."""
    backbone = getattr(model, "backbone", None)
    inner = backbone if isinstance(backbone, nn.Module) else model
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    fingerprint = {"class": type(model).__qualname__,
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "shapes": hashlib.sha256(shapes.encode()).hexdigest()[:16]}
    if inner is not model:
        fingerprint["backbone"] = type(inner).__qualname__
    config = getattr(inner, "config", None)
    if isinstance(config, dict):
        with contextlib.suppress(TypeError):  # a config that is not JSON-like is left out, not fatal
            fingerprint["config"] = check_config(config, "config")
    return fingerprint


def _differences(a, b, prefix: str = "") -> list[str]:
    """The dotted keys where two JSON-like fingerprints differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "(whole)"]


def check_fingerprint(found: "Checkpoint | dict | None", expected: dict, *, source: str | os.PathLike | None = None,
                      override: bool = False, override_name: str = "override=True") -> None:
    """Refuse state that belongs to another run: raise :class:`CheckpointMismatchError` with both
    fingerprints and where they differ, unless ``override`` (then warn).

    ``found``: a :class:`Checkpoint` (its fingerprint and path are used) or a fingerprint read from
    ``source`` (e.g. a run's config.json). ``override_name``: how the caller's user sets the
    override (a keyword, a CLI flag), quoted in the message. State without a fingerprint (older
    files) cannot be checked: a warning says so.
    """
    if isinstance(found, Checkpoint):
        found, source = found.fingerprint, found.path
    expected = check_config(expected, "fingerprint")
    if found is None:
        warnings.warn(f"{source} has no fingerprint (written by an older version): cannot check that it "
                      "belongs to this run", stacklevel=2)
        return
    differ = _differences(found, expected)
    if not differ:
        return
    message = (f"{source} belongs to another run: the fingerprints differ in {differ}.\n"
               f"  found:    {json.dumps(found, sort_keys=True)}\n"
               f"  this run: {json.dumps(expected, sort_keys=True)}\n"
               f"Use a new folder, or pass {override_name} to load it anyway.")
    if override:
        warnings.warn(f"{message} (overridden)", stacklevel=2)
        return
    raise CheckpointMismatchError(message)


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the checkpoint of ``step`` lives: ``run_dir/checkpoint-000001000.pt``."""
    return Path(run_dir) / f"checkpoint-{step:09d}.pt"


def step_of(path: str | os.PathLike) -> int:
    """The step of the checkpoint file ``path`` (read from its name, the format :func:`checkpoint_path` writes)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint file name (checkpoint-<step>.pt)")
    return int(match.group(1))


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``run_dir``, oldest step first (temporary files are never listed)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted((p for p in run_dir.iterdir() if _NAME.match(p.name)), key=step_of)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or None when there is none."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int | None) -> None:
    """Delete all but the newest ``keep`` checkpoints (None or 0 keeps all) and stale temporary files."""
    run_dir = Path(run_dir)
    found = list_checkpoints(run_dir)
    if keep:
        for old in found[:-keep]:
            old.unlink(missing_ok=True)
    for stale in run_dir.glob(".checkpoint-*.tmp"):
        stale.unlink(missing_ok=True)
