"""Atomic file writes (TF-free): a file with its final name is always complete.

Each write goes to a temporary file next to the target (same suffix, so writers that infer the format from the
name still work) and is renamed over it (os.replace). Stage markers, results.json files and checkpoints rely on it.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Calls `write(tmp_path)` for a temporary path next to `path` (same suffix), then renames it to `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    suffix = ".keras" if base.endswith(".keras") else os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{base}-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)
