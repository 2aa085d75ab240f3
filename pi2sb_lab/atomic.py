"""Atomic file writes: every file the package and its drivers write whole goes through here.

A file is written to a temporary name in the same folder and renamed over its target with
``os.replace`` (atomic on POSIX and Windows), so a run killed mid-write leaves the previous file or
none, never a truncated one that a rerun would take as finished. The temporary name,
``.NAME.PID.RANDOM.tmp``, is hidden and never matches the target's pattern; it is removed on any
failure, KeyboardInterrupt included.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, rename it onto ``path``.

    ``durable``: fsync the file before the rename and the folder after it, so the new file survives a
    power loss too (checkpoints); plain reports skip the two syncs.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:  # also KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
    if durable:
        _fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike, data: str | bytes, *, durable: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; return ``path``."""
    path = Path(path)
    with atomic_path(path, durable=durable) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
