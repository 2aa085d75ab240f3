"""Small helpers every notebook's first cells use: parameter checks, device choice, output folder.

Notebooks are run by people in JupyterLab and by papermill with injected
parameters; a bad injected value must stop the run at once with a message that
names the parameter, not fail twenty cells later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch


def check_param(name: str, value: Any, kind: type | tuple[type, ...] | None = None, *,
                choices: Iterable[Any] | None = None, min: float | None = None, max: float | None = None) -> Any:
    """Validate one notebook parameter; raise ``ValueError`` naming it and what is accepted."""
    if kind is not None:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise ValueError(f"parameter {name} must be {names}; got {value!r} ({type(value).__name__})")
    if choices is not None:
        choices = list(choices)
        if value not in choices:
            raise ValueError(f"parameter {name} must be one of {choices}; got {value!r}")
    if min is not None and value < min:
        raise ValueError(f"parameter {name} must be >= {min}; got {value!r}")
    if max is not None and value > max:
        raise ValueError(f"parameter {name} must be <= {max}; got {value!r}")
    return value


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; ``"cuda"`` without a GPU is an error."""
    check_param("DEVICE", device, str)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("parameter DEVICE='cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"parameter DEVICE must be 'auto', 'cpu' or 'cuda[:N]'; got {device!r}") from err


def output_dir(path: str | Path) -> Path:
    """Create (if needed) and return the folder a notebook writes its figures and tables to."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out
