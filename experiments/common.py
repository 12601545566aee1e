"""Bookkeeping shared by the experiment modules (TF-free): atomic result files, CPU time, the git commit."""
from __future__ import annotations

import json
import os
import resource
import subprocess

import numpy as np

from tfsynth.atomic import atomic_write, atomic_write_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_json(path: str, obj, indent: int = 2) -> None:
    """Atomic: a file that exists is complete (stage markers rely on it)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def savez(path: str, **arrays) -> None:
    """Atomic `np.savez_compressed`."""
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its waited-for children (render workers) so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def git_commit() -> dict:
    """{"commit": HEAD or "unknown", "dirty": tracked files differ from HEAD}."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
