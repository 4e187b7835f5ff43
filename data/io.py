"""Atomic file writes: a temporary file in the target folder, then a rename.

DESIGN.md, "Run outputs": writes are atomic, so an interrupted run never leaves a half-written report,
model or checkpoint where a later run (or ``--resume``) would read it. Lives in ``data`` because it is
the lowest package that writes files; ``eval`` and the paper packages reuse it.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def _temporary(path: Path) -> Path:
    # Same folder (same file system, so os.replace is atomic); keeps all suffixes, which some writers
    # check or use to choose the format (keras.Model.save: ".keras", save_weights: ".weights.h5").
    base = path.name.split(".")[0]
    return path.parent / f".{base}.{secrets.token_hex(8)}.tmp{path.name[len(base):]}"


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` (str as UTF-8, or bytes) to ``path`` atomically and return the path.

    The data goes to a temporary file in the destination folder (same file system), is flushed to disk
    and then renamed over ``path`` with os.replace, so readers see the old file or the new one, never a
    partial write. Missing parent folders are created; the temporary file is removed on failure.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data: expected str or bytes, got {type(data).__name__}")

    def write(tmp: str):
        # Created like open(path, "w") would (mode 0o666 minus the umask), unlike tempfile's private 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_save(path, write)


def atomic_save(path, save: Callable[[str], object]) -> Path:
    """Call ``save(tmp_path)`` on a temporary path beside ``path``, then move it into place.

    For writers that take a file name (``keras.Model.save``, ``save_weights``); nothing is left behind
    if ``save`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        save(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
